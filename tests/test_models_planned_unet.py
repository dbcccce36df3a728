"""planned_unet (nnU-Net's 2D PlainConvUNet): shapes, deep supervision, norms, the analytical
parameter count and activation estimate, the .keras round trip and argument checks."""

import keras
import numpy as np
import pytest
from _model_checks import (assert_probability_maps, assert_reloads_identically,
                          binary_masks, images, predict)

from kerasmed.models import build, default_config, get_spec
from kerasmed.models.planned_unet import (NORMS, UPSAMPLING, default_side_levels,
                                          planned_unet_activation_units,
                                          planned_unet_parameters)

TINY = {"input_shape": (32, 32, 1), "widths": (4, 8, 16)}
DEEP = {"input_shape": (32, 32, 1), "widths": (4, 8, 16, 32, 32)}  # sides 2 and 1 by default
DEFAULT_PARAMETERS = 7_762_465  # measured: defaults at 256x256x1, one class


def _train_step(model, x, y):
    """One Adam step with binary cross-entropy on every output; returns (loss, unchanged)."""
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  run_eagerly=True)  # tracing would dominate; eager runs the same ops
    before = [w.numpy().copy() for w in model.trainable_weights]
    targets = [y] * len(model.outputs) if len(model.outputs) > 1 else y
    loss = np.asarray(model.train_on_batch(x, targets)).ravel()[0]
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(w.numpy(), b)]
    return float(loss), unchanged


@pytest.mark.parametrize("classes", [1, 3])
def test_output_shapes_and_activation(classes):
    model = build("planned_unet", classes=classes, **TINY)
    assert model.name == "planned_unet" and model.output_names == ["final"]
    assert_probability_maps(predict(model, images(2, (32, 32, 1))), (2, 32, 32), classes)


def test_layers_are_named_and_strided_as_nnunet():
    model = build("planned_unet", **TINY, convs_per_stage=3)
    names = {layer.name for layer in model.layers}
    for stage in range(3):
        assert {f"enc{stage}_conv{j}" for j in (1, 2, 3)} <= names
        assert {f"enc{stage}_norm{j}" for j in (1, 2, 3)} <= names
    for level in (1, 0):
        assert {f"dec{level}_up", f"dec{level}_concat", f"dec{level}_conv3",
                f"dec{level}_norm3", f"dec{level}_act3"} <= names
    assert "enc2_pool" not in names and not any("pool" in n for n in names)
    assert model.get_layer("enc0_conv1").strides == (1, 1)
    assert model.get_layer("enc1_conv1").strides == (2, 2)  # downsampling by strided conv
    assert model.get_layer("enc1_conv2").strides == (1, 1)
    assert model.get_layer("enc2_conv1").output.shape[1:] == (8, 8, 16)
    assert not model.get_layer("enc0_conv1").use_bias  # the norm's offset replaces it
    assert isinstance(model.get_layer("dec0_up"), keras.layers.Conv2DTranspose)
    assert model.get_layer("enc0_act1").negative_slope == pytest.approx(0.01)
    assert model.get_layer("final_conv").kernel_size == (1, 1)


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_builds_and_trains_one_step(norm):
    keras.utils.set_random_seed(0)
    model = build("planned_unet", **TINY, norm=norm, dropout=0.1)
    norms = [layer for layer in model.layers if "_norm" in layer.name]
    if norm == "none":
        assert not norms and model.get_layer("enc0_conv1").use_bias
    else:
        kind = keras.layers.BatchNormalization if norm == "batch" else \
            keras.layers.GroupNormalization
        assert norms and all(isinstance(layer, kind) for layer in norms)
    if norm == "instance":  # one group per channel
        assert all(layer.groups == layer.output.shape[-1] for layer in norms)
    if norm == "group":
        assert [model.get_layer(f"enc{i}_norm1").groups for i in range(3)] == [4, 8, 8]
    x = images(2, (32, 32, 1))
    loss, unchanged = _train_step(model, x, binary_masks(2, (32, 32, 1)))
    assert np.isfinite(loss)
    assert not unchanged, f"trainable weights did not change: {unchanged}"


def test_group_norm_groups_divide_the_channels():
    model = build("planned_unet", input_shape=(16, 16, 1), widths=(12, 20), norm="group")
    assert model.get_layer("enc0_norm1").groups == 6 and model.get_layer("enc1_norm1").groups == 5


def test_deep_supervision_outputs_order_names_shapes_and_training():
    model = build("planned_unet", **DEEP, classes=2, deep_supervision=True)
    assert default_side_levels(5) == (2, 1)
    assert model.output_names == ["side2", "side1", "final"]  # final, the evaluated one, last
    assert [tuple(o.shape) for o in model.outputs] == [(None, 32, 32, 2)] * 3
    assert all(o.dtype == "float32" for o in model.outputs)
    assert model.get_layer("side2_conv").output.shape[1:] == (8, 8, 2)  # head, then upsampled
    assert model.get_layer("side2_upsample").interpolation == "bilinear"
    outs = predict(model, images(2, (32, 32, 1)))
    for out in outs:
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)

    explicit = build("planned_unet", **DEEP, deep_supervision=True,
                     deep_supervision_scales=[1, 3])
    assert explicit.output_names == ["side3", "side1", "final"]
    loss, unchanged = _train_step(explicit, images(2, (32, 32, 1)), binary_masks(2, (32, 32, 1)))
    assert np.isfinite(loss) and not unchanged


PARAMETER_GRID = [
    dict(widths=(4, 8, 16), in_channels=1, classes=1),
    dict(widths=(4, 8, 16), in_channels=3, classes=3, norm="batch"),
    dict(widths=(3, 6, 12), in_channels=2, classes=2, norm="none", convs_per_stage=1),
    dict(widths=(12, 20, 24), in_channels=1, classes=1, norm="group", convs_per_stage=3),
    dict(widths=(4, 8, 16, 32), in_channels=1, classes=4, deep_supervision=True),
    dict(widths=(4, 8, 16, 32, 32), in_channels=3, classes=1, norm="batch",
         deep_supervision=True, deep_supervision_scales=(1, 2, 3)),
    dict(widths=(5, 7), in_channels=1, classes=2, upsampling="bilinear"),
    dict(widths=(4, 8, 16, 16), in_channels=1, classes=1, norm="group", upsampling="bilinear",
         deep_supervision=True),
]


@pytest.mark.parametrize("config", PARAMETER_GRID, ids=range(len(PARAMETER_GRID)))
def test_parameter_formula_equals_count_params(config):
    kwargs = dict(config)
    in_channels = kwargs.pop("in_channels")
    model = build("planned_unet", input_shape=(32, 32, in_channels), **kwargs)
    assert planned_unet_parameters(**config) == model.count_params()


def test_activation_units_sum_every_conv_output():
    model = build("planned_unet", input_shape=(32, 48, 1), widths=(4, 8, 16, 32),
                  convs_per_stage=3, upsampling="bilinear")
    convs = [layer for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
             and not layer.name.startswith(("final", "side"))]
    expected = sum(int(np.prod(layer.output.shape[1:])) for layer in convs)
    assert planned_unet_activation_units((32, 48), (4, 8, 16, 32), 3) == expected
    assert planned_unet_activation_units((256, 256), (32, 64, 128, 256, 512)) == 19_922_944
    with pytest.raises(ValueError, match="divisible"):
        planned_unet_activation_units((30, 32), (4, 8, 16))


@pytest.mark.parametrize("config", [
    dict(TINY, norm="instance"),
    dict(DEEP, norm="group", upsampling="bilinear", deep_supervision=True, classes=3),
], ids=["instance", "group-bilinear-deep"])
def test_keras_save_load_round_trip(config, tmp_path):
    model = build("planned_unet", **config)
    reloaded = assert_reloads_identically(model, images(2, (32, 32, 1), seed=3),
                                          tmp_path / "planned_unet.keras")
    assert reloaded.output_names == model.output_names


def test_default_configuration_parameter_count():
    model = build("planned_unet")
    assert model.input_shape == (None, 256, 256, 1) and model.output_shape == (None, 256, 256, 1)
    assert model.count_params() == DEFAULT_PARAMETERS
    assert planned_unet_parameters((32, 64, 128, 256, 512), 1, 1) == DEFAULT_PARAMETERS
    assert default_config("planned_unet")["widths"] == (32, 64, 128, 256, 512)
    assert get_spec("planned_unet").description.startswith("Planner-sized")


def test_any_input_size_and_mixed_precision():
    model = build("planned_unet", input_shape=(None, None, 1), widths=(4, 8, 16))
    for size in (32, 48):
        assert predict(model, images(1, (size, size, 1))).shape == (1, size, size, 1)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build("planned_unet", **TINY, deep_supervision=True,
                      deep_supervision_scales=(1,))
        assert all(o.dtype == "float32" for o in model.outputs)
        assert all(np.isfinite(o).all() for o in predict(model, images(1, (32, 32, 1))))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_logits_keep_the_output_name():
    model = build("planned_unet", **TINY, activation=None)
    assert model.output_names == ["final"]
    assert model.get_layer("final").activation.__name__ == "linear"


_COUNTED = {"widths", "classes", "convs_per_stage", "norm", "deep_supervision",
            "deep_supervision_scales", "upsampling"}


@pytest.mark.parametrize("kwargs,match", [
    (dict(widths=(4,)), "widths"),
    (dict(widths=(4, 0, 8)), "widths"),
    (dict(widths=(4, 8.0)), "widths"),
    (dict(widths="48"), "widths"),
    (dict(convs_per_stage=0), "convs_per_stage"),
    (dict(norm="layer"), "norm"),
    (dict(negative_slope=-0.1), "negative_slope"),
    (dict(dropout=1.0), "dropout"),
    (dict(upsampling="nearest"), "upsampling"),
    (dict(classes=0), "classes"),
    (dict(input_shape=(34, 32, 1)), "divisible"),
    (dict(deep_supervision=True), "deep_supervision"),  # 3 widths: no default side level
    (dict(deep_supervision=True, deep_supervision_scales=(2,)), "deep_supervision_scales"),
    (dict(deep_supervision=True, deep_supervision_scales=(1, 1)), "deep_supervision_scales"),
    (dict(deep_supervision_scales=(1,)), "deep_supervision_scales"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build("planned_unet", **dict(TINY, **kwargs))
    if set(kwargs) <= _COUNTED:  # the count rejects what the builder rejects
        counted = {"widths": TINY["widths"], "classes": 1, **kwargs}
        with pytest.raises(ValueError, match=match):
            planned_unet_parameters(in_channels=1, **counted)


def test_choices_are_exported_once():
    assert NORMS == ("instance", "group", "batch", "none")
    assert UPSAMPLING == ("transpose", "bilinear")
