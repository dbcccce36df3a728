"""Issue 30: ``import kerasmed`` is enough for ``keras.saving.load_model`` (in either import
order, and after importing a sub-package first), and no command's ``--help`` imports Keras."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kerasmed.cli import (compare_main, eval_main, explain_main, export_main, plan_main,
                          predict_main, train_main, tune_main)

COMMANDS = [f.__name__ for f in (train_main, eval_main, predict_main, explain_main, export_main,
                                 compare_main, tune_main, plan_main)]


def _fresh(code: str, *args) -> str:
    """Run ``code`` in a new Python process (TensorFlow quiet); returns its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A compiled kerasmed model saved as ``.keras``: five of kerasmed's losses, all of its
    metrics and DRRMSAN's registered layers (its weighted fusion among them)."""
    import keras

    from kerasmed import losses, metrics
    from kerasmed.models import build

    path = tmp_path_factory.mktemp("ckpt") / "model.keras"
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4)
    # A different kerasmed loss on each of the five outputs, every kerasmed metric on the last.
    names = ("focal", "tversky", "focal_tversky", "weighted_crossentropy", "bce_dice")
    model.compile(optimizer="adam",
                  loss={o: losses.get(n) for o, n in zip(model.output_names, names)},
                  metrics={model.output_names[-1]: [metrics.get(m)
                                                    for m in metrics.available()]})
    model.save(path)
    keras.backend.clear_session()
    return path


@pytest.mark.parametrize("imports", ["import keras, kerasmed", "import kerasmed, keras",
                                     "import kerasmed.models; import keras",
                                     "import kerasmed.data.dataset; import keras"])
def test_load_model_works_once_kerasmed_is_imported(checkpoint, imports):
    out = _fresh(f"""
        {imports}
        import sys
        model = keras.saving.load_model(sys.argv[1])
        print(len(set(type(loss).__name__ for loss in model.loss.values())),
              type(model.loss["fused"]).__name__, type(model.get_layer("fused")).__name__)
        """, str(checkpoint))
    assert out.split() == ["5", "BCEDiceLoss", "WeightedFusion"]


def test_import_kerasmed_registers_every_object_of_the_package():
    """What ``import kerasmed`` registers equals what importing every module registers: no
    loss, metric or layer is left for a later import to register."""
    out = _fresh("""
        import importlib, json, pkgutil
        import keras, kerasmed
        first = sorted(keras.saving.get_custom_objects())
        for info in pkgutil.walk_packages(kerasmed.__path__, "kerasmed."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
        print(json.dumps([first, sorted(keras.saving.get_custom_objects())]))
        """)
    first, everything = json.loads(out)
    assert first == everything
    assert {"kerasmed>BCEDiceLoss", "kerasmed>WeightedFusion"} <= set(first)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_does_not_import_keras(command):
    """``--help`` answers before Keras (and its backend, seconds to import) is loaded, and
    before SciPy and scikit-image (a few tenths of a second; the help quotes defaults only)."""
    out = _fresh(f"""
        import sys
        from kerasmed.cli import {command}
        try:
            {command}(["--help"])
        except SystemExit:
            pass
        print("IMPORTED", sorted(m for m in ("keras", "tensorflow", "jax", "torch", "scipy",
                                             "skimage") if m in sys.modules))
        """)
    assert out.strip().splitlines()[-1] == "IMPORTED []"
