"""The rule behind ``jit_compile: "auto"`` (``kerasmed.training.xla``): the table itself, what
an experiment's ``training.jit_compile`` compiles with, and the errors. The timings that chose
the table are in ``benchmarks/RESULTS.md``; nothing here is timed."""

import keras
import pytest

from kerasmed.training.compile import compile_model
from kerasmed.experiment.validate import section_defaults
from kerasmed.training.xla import JIT_RULE, device_kind, resolve_jit_compile

BACKENDS = ("tensorflow", "jax", "torch")


def test_rule_covers_every_backend_and_device_kind():
    assert set(JIT_RULE) == {(b, d) for b in BACKENDS for d in ("cpu", "gpu")}
    assert all(isinstance(v, bool) for v in JIT_RULE.values())


@pytest.mark.parametrize("backend,device,expected", [
    ("tensorflow", "cpu", False),   # XLA measured slower on the 2-core CPU
    ("tensorflow", "gpu", True),
    ("jax", "cpu", True),           # JAX without jit runs op by op
    ("jax", "gpu", True),
    ("torch", "cpu", False),        # torch.compile costs more than a short run saves
    ("torch", "gpu", False),
])
def test_auto_follows_the_rule(backend, device, expected):
    assert resolve_jit_compile("auto", backend, device) is expected


@pytest.mark.parametrize("setting", [True, False])
def test_explicit_settings_are_used_as_given(setting):
    for key in JIT_RULE:
        assert resolve_jit_compile(setting, *key) is setting


def test_unknown_backend_falls_back_to_eager():
    assert resolve_jit_compile("auto", "openvino", "cpu") is False


@pytest.mark.parametrize("bad", ["yes", "xla", 1, None])
def test_bad_setting_is_named(bad):
    with pytest.raises(ValueError, match="jit_compile"):
        resolve_jit_compile(bad, "tensorflow", "cpu")


def test_this_machine_detected():
    assert device_kind() in ("cpu", "gpu")


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_compile_model_compiles_with_the_resolved_setting(setting):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    compile_model(model, {**section_defaults("training"), "jit_compile": setting}, 1)
    assert model.jit_compile is resolve_jit_compile(setting)
