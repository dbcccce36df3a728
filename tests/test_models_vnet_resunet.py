"""V-Net (2D) and ResUNet-a: parameter counts at the papers' configurations, structure, one
training step, saving and reloading (their JAX check runs with UNet++'s in
test_models_nested_unets.py)."""

import keras
import numpy as np
import pytest

from _model_checks import assert_probability_maps, images, predict_outputs
from kerasmed.models import build, default_config
from kerasmed.models.resunet_a import GridMaxPooling
from kerasmed.models.vnet import RepeatChannels

TINY = {
    "vnet_2d": dict(input_shape=(32, 32, 3), filters=4, depth=2),
    "resunet_a": dict(input_shape=(32, 32, 3), filters=4, depth=2),
}


def test_vnet_paper_configuration_parameter_count():
    # Measured (docs/models.md): the paper states no count; its network is 3D.
    model = build("vnet_2d", **default_config("vnet_2d"))
    assert model.count_params() == 13_275_346
    assert model.output_shape == (None, 256, 256, 2)
    convs = [sum(1 for l in model.layers if l.name.startswith(f"{stage}_conv"))
             for stage in ("stage0", "stage1", "stage2", "stage3", "stage4", "up3", "up2",
                           "up1", "up0")]
    assert convs == [1, 2, 3, 3, 3, 3, 3, 2, 1]  # the paper's stages
    assert model.get_layer("stage1_conv1").kernel_size == (5, 5)
    assert model.get_layer("stage1_down_conv").strides == (2, 2)
    assert isinstance(model.get_layer("up0_transpose_conv"), keras.layers.Conv2DTranspose)
    assert model.get_layer("up3_conv1").filters == 256  # 128 upsampled + 128 skipped
    prelu = model.get_layer("stage4_prelu")
    assert tuple(prelu.alpha.shape) == (1, 1, 256)  # one slope per channel
    del model
    keras.backend.clear_session()


def test_resunet_a_d6_parameter_count_and_structure():
    # Measured (docs/models.md), at the authors' d6 configuration.
    model = build("resunet_a", input_shape=(256, 256, 3), multitask=True)
    assert model.output_names == ["distance", "boundary", "color", "final"]
    assert model.count_params() == 58_073_510
    heads = sum(l.count_params() for l in model.layers
                if l.name.startswith(("distance", "boundary", "color")))
    # The plain model, less the multitask heads and the two extra input channels (boundary
    # and distance) of the segmentation head's first 3x3 conv to 32 channels.
    assert model.count_params() - heads - 2 * 9 * 32 == 58_035_137
    assert model.get_layer("middle_psp_concat").output.shape[1:] == (8, 8, 2048)
    branches = {lvl: sum(1 for l in model.layers if l.name.startswith(f"enc{lvl}_d")
                         and l.name.endswith("_conv1")) for lvl in range(6)}
    assert branches == {0: 4, 1: 4, 2: 3, 3: 3, 4: 1, 5: 1}
    assert model.get_layer("enc0_d31_conv1").dilation_rate == (31, 31)
    del model
    keras.backend.clear_session()


@pytest.mark.parametrize("name", ["vnet_2d", "resunet_a"])
@pytest.mark.parametrize("classes", [1, 3])
def test_tiny_outputs(name, classes):
    model = build(name, classes=classes, **TINY[name])
    assert model.name == name
    (out,) = predict_outputs(model, images())
    assert_probability_maps(out, (2, 32, 32), classes)


def test_resunet_a_multitask_heads_and_sizes():
    model = build("resunet_a", multitask=True, **TINY["resunet_a"])
    distance, boundary, color, final = predict_outputs(model, images())
    assert color.shape == (2, 32, 32, 3) and final.shape == (2, 32, 32, 1)
    assert all(((o >= 0) & (o <= 1)).all() for o in (distance, boundary, color, final))
    with pytest.raises(ValueError, match="static"):
        build("resunet_a", input_shape=(None, None, 3), filters=4, depth=2)
    with pytest.raises(ValueError, match="dilation"):
        build("resunet_a", input_shape=(32, 32, 3), filters=4, depth=2,
              encoder_dilations=((1,),))
    with pytest.raises(ValueError, match="divisible"):
        build("vnet_2d", input_shape=(30, 30, 3), filters=4, depth=2)


def test_custom_layers():
    x = np.arange(2 * 4 * 6 * 1, dtype="float32").reshape(2, 4, 6, 1)
    out = keras.ops.convert_to_numpy(GridMaxPooling(2)(x))
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[0, :2, :3, 0], np.full((2, 3), x[0, :2, :3, 0].max()))
    np.testing.assert_array_equal(out[1, 2:, 3:, 0], np.full((2, 3), x[1, 2:, 3:, 0].max()))
    odd = np.random.default_rng(0).random((1, 5, 5, 2)).astype("float32")  # ceil-sized cells
    out = keras.ops.convert_to_numpy(GridMaxPooling(2)(odd))
    assert out[0, 4, 4, 1] == odd[0, 3:, 3:, 1].max()
    assert GridMaxPooling.from_config(GridMaxPooling(4).get_config()).bins == 4
    rgb = np.random.default_rng(1).random((1, 2, 2, 3)).astype("float32")
    tiled = keras.ops.convert_to_numpy(RepeatChannels(16)(rgb))
    assert tiled.shape == (1, 2, 2, 16)
    np.testing.assert_array_equal(tiled[..., 3:6], rgb)
    np.testing.assert_array_equal(tiled[..., 15], rgb[..., 0])


@pytest.mark.parametrize("name", ["vnet_2d", "resunet_a"])
def test_one_train_step_and_round_trip(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build(name, **TINY[name])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  run_eagerly=True)
    y = (np.random.default_rng(1).random((2, 32, 32, 1)) > 0.5).astype("float32")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(images(), y)).ravel()[0])
    assert np.isfinite(loss)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(keras.ops.convert_to_numpy(w), b)]
    assert not unchanged, unchanged
    x = images(seed=3)
    expected = predict_outputs(model, x)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == name
    np.testing.assert_allclose(predict_outputs(loaded, x)[0], expected[0], rtol=1e-5, atol=1e-6)
