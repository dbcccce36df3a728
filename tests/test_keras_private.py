"""The private Keras attributes kerasmed reads live in kerasmed.keras_private, and a Keras
upgrade that removes one fails here, naming it."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasmed import keras_private

PACKAGE = Path(__file__).resolve().parent.parent / "kerasmed"


def test_every_private_keras_attribute_kerasmed_reads_is_there():
    missing = keras_private.missing_attributes()
    assert not missing, (f"Keras {keras.__version__} lacks private attribute(s) kerasmed "
                         f"relies on: {'; '.join(missing)}; adapt kerasmed/keras_private.py")


def test_missing_attributes_names_the_attribute(monkeypatch):
    monkeypatch.setitem(keras_private.PRIVATE_ATTRIBUTES,
                        "keras.optimizers.Optimizer._kerasmed_absent", "rebuild_optimizer")
    assert keras_private.missing_attributes() == [
        "keras.optimizers.Optimizer._kerasmed_absent "
        "(used by kerasmed.keras_private.rebuild_optimizer)"]


def test_no_module_but_the_wrapper_reads_them():
    names = {dotted.rsplit(".", 1)[1] for dotted in keras_private.PRIVATE_ATTRIBUTES}
    names.add("_compile_config")
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "keras_private.py":
            continue
        text = path.read_text()
        hits = sorted(n for n in names if re.search(rf"[.\"']{n}\b", text))
        if hits:
            found[str(path.relative_to(PACKAGE))] = hits
    assert not found


@pytest.mark.parametrize("scaled", [False, True], ids=["adam", "loss-scale"])
def test_rebuild_optimizer_keeps_the_state_of_the_variables_already_trained(scaled):
    inputs = keras.Input((3,))
    first, second = keras.layers.Dense(2, name="first"), keras.layers.Dense(1, name="second")
    model = keras.Model(inputs, second(first(inputs)))
    first.trainable = False
    optimizer = keras.optimizers.Adam()
    if scaled:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss="mse")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    model.train_on_batch(x, y)
    before = {v.name: keras.ops.convert_to_numpy(v) for v in optimizer.variables}
    first.trainable = True
    keras_private.rebuild_optimizer(optimizer, model.trainable_variables)
    after = {v.name: keras.ops.convert_to_numpy(v) for v in optimizer.variables}
    assert set(before) < set(after)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value)
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(x, y)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 2


def test_inbound_parents_follow_the_functional_graph():
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2, name="dense")
    head = keras.layers.Dense(1, name="head")
    keras.Model(inputs, head(dense(inputs)))
    assert [[op.name for op in parents] for parents in keras_private.inbound_parents(head)] \
        == [["dense"]]
