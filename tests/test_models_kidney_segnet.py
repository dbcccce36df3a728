"""Kidney-SegNet and its DiCE unit: paper-size parameter count, hand-checked DiCE outputs,
one training step, saving and reloading, and the JAX backend."""

import keras
import numpy as np
import pytest

import _jax_backend
from _model_checks import (assert_most_weights_changed, assert_reloads_identically, images,
                          trained_tiny_fixture)
from kerasmed.models import build, get_spec
from kerasmed.models.dice_unit import ChannelShuffle, GroupConv2D, dice_unit, dice_unit_parameters
from kerasmed.models.kidney_segnet import kidney_segnet

JAX_CODE = """
    import numpy as np, keras
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build
    model = build("kidney_segnet", input_shape=(16, 16, 3), filters=2)
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    x = np.random.rand(2, 16, 16, 3).astype("float32")
    before = model.get_weights()
    loss = model.train_on_batch(x, np.random.rand(2, 16, 16, 1).astype("float32"))
    assert np.isfinite(loss), loss
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    print("ok", model.count_params())
"""


jax_run = _jax_backend.module_fixture(JAX_CODE)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_paper_size_parameter_count():
    # 512x512x3, n = 32: the parameters the authors' PyTorch model uses, counted layer by layer
    # from their code (dice_unit_parameters + stem, ASPP projection, gates and head): 972,356,
    # the "about 0.97M" of ARCHITECTURES.md.
    model = build("kidney_segnet")
    assert model.name == "kidney_segnet"
    assert model.output_shape == (None, 512, 512, 1)
    assert trainable_count(model) == 972_356
    assert model.count_params() == 999_172               # + BatchNorm moving statistics
    assert model.layers[-1].name == "distance_head_relu"
    assert model.layers[-1].dtype_policy.name == "float32"
    assert get_spec("kidney_segnet").defaults["filters"] == 32


def test_mask_head_and_options():
    model = kidney_segnet((32, 48, 3), filters=4, head="mask")
    assert model.output_shape == (None, 32, 48, 1)
    assert model.layers[-1].name == "mask_head_sigmoid"
    logits = kidney_segnet((16, 16, 1), filters=2, activation=None)
    assert logits.layers[-1].name == "distance_head_conv"
    with pytest.raises(ValueError, match="head"):
        kidney_segnet((16, 16, 3), head="boxes")
    with pytest.raises(ValueError, match="fixed input size"):
        kidney_segnet((None, None, 3))
    with pytest.raises(ValueError, match="divisible by 8"):
        kidney_segnet((20, 20, 3))


def test_mixed_precision_keeps_the_head_in_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = kidney_segnet((16, 16, 3), filters=2)
        assert model.get_layer("enc2_dice1_proj_conv").compute_dtype == "float16"
        out = model(np.random.rand(1, 16, 16, 3).astype("float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(out)).all()


# ---- the DiCE unit alone -------------------------------------------------------------------

def dice_model(shape, filters, **kwargs):
    inputs = keras.Input(shape)
    return keras.Model(inputs, dice_unit(inputs, filters, name="dice", **kwargs))


def test_dice_unit_shapes_and_parameters():
    for (h, w, c), f, k in [((8, 6, 4), 6, 3), ((5, 7, 3), 3, 1), ((4, 4, 8), 2, 3)]:
        model = dice_model((h, w, c), f, kernel_size=k, dilation_rate=2)
        assert model.output_shape == (None, h, w, f)
        assert trainable_count(model) == dice_unit_parameters(c, f, h, w, k)
        assert model.count_params() == dice_unit_parameters(c, f, h, w, k, trainable_only=False)


def set_identity_like(model, branch_weights=(1 / 3, 1 / 3, 1 / 3), height_kernel=None):
    """Weights that make every stage pass its input through, so the output is checkable."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = np.zeros(layer.kernel.shape, "float32")
            kernel[1, 1] = 1                                   # centre tap: identity
            if layer.name == "dice_heightwise" and height_kernel is not None:
                kernel = height_kernel(kernel)
            layer.kernel.assign(kernel)
        elif isinstance(layer, keras.layers.BatchNormalization):
            # Inference BN: (x - 0) / sqrt(var + eps) * 1 + 0 = x when var = 1 - eps.
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 1 - layer.epsilon))
        elif isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(np.ones(layer.alpha.shape))      # slope 1 both sides: identity
        elif layer.name == "dice_fuse_conv":
            # Kernel (1, 1, 3C, 1): after the shuffle, input channels 3c, 3c + 1, 3c + 2 hold
            # channel c's channel-, height- and width-wise responses; weight them.
            kernel = np.zeros(layer.kernel.shape, "float32")
            kernel[0, 0, :, 0] = np.tile(branch_weights, kernel.shape[2] // 3)
            layer.kernel.assign(kernel)
        elif layer.name == "dice_proj_conv":
            # C -> C with C groups: kernel (3, 3, C, 1); the centre tap keeps each channel.
            kernel = np.zeros(layer.kernel.shape, "float32")
            kernel[1, 1] = 1
            layer.kernel.assign(kernel)
        elif layer.name.startswith("dice_se_") and hasattr(layer, "kernel"):
            layer.kernel.assign(np.zeros(layer.kernel.shape))  # gate = sigmoid(0) = 0.5


def test_dice_unit_hand_checked_identity():
    # Identity dimension-wise convs, BN and PReLU; the fusion averages three equal copies; the
    # depthwise-like projection keeps each channel; the zeroed SE gate is sigmoid(0) = 0.5.
    # So the unit computes 0.5 * x.
    model = dice_model((4, 5, 3), 3)
    set_identity_like(model)
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), 0.5 * x, rtol=1e-5, atol=1e-6)


def test_dice_unit_height_wise_conv_runs_over_channels_and_width():
    # The height-wise conv sees (C, W) planes, one filter per row. A kernel whose only tap is
    # one step back along its first spatial axis (C) shifts the channels: output channel c is
    # input channel c - 1. Keeping only that branch in the fusion (weights 0, 1, 0) makes the
    # unit compute 0.5 * x shifted by one channel, with zeros in channel 0.
    def shift_channels(kernel):
        kernel = np.zeros_like(kernel)
        kernel[0, 1] = 1
        return kernel

    model = dice_model((4, 5, 3), 3)
    set_identity_like(model, branch_weights=(0, 1, 0), height_kernel=shift_channels)
    x = np.random.default_rng(1).normal(size=(1, 4, 5, 3)).astype("float32")
    expected = np.zeros_like(x)
    expected[..., 1:] = 0.5 * x[..., :-1]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.get_layer("dice_heightwise").kernel.shape == (3, 3, 4, 1)   # H = 4 filters
    assert model.get_layer("dice_widthwise").kernel.shape == (3, 3, 5, 1)    # W = 5 filters


def test_dice_unit_trains_in_graph_mode():
    keras.utils.set_random_seed(0)
    model = dice_model((8, 6, 4), 8, dilation_rate=2)
    model.compile(keras.optimizers.SGD(0.1), loss="mse")          # a traced tf.function
    x = np.random.default_rng(0).normal(size=(2, 8, 6, 4)).astype("float32")
    before = [w.copy() for w in model.get_weights()]
    assert np.isfinite(model.train_on_batch(x, np.ones((2, 8, 6, 8), "float32")))
    assert sum(not np.array_equal(b, a) for b, a in zip(before, model.get_weights())) >= 8


def test_channel_shuffle_interleaves_groups():
    x = np.arange(6, dtype="float32").reshape(1, 1, 1, 6)    # groups [0 1] [2 3] [4 5]
    layer = ChannelShuffle(3)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x))[0, 0, 0],
                                  [0, 2, 4, 1, 3, 5])
    clone = ChannelShuffle.from_config(layer.get_config())
    assert clone.groups == 3
    with pytest.raises(ValueError, match="divisible"):
        ChannelShuffle(4)(np.zeros((1, 2, 2, 6), "float32"))


@pytest.mark.parametrize("channels, filters, groups", [(6, 4, 2), (4, 8, 4), (8, 4, 4), (3, 3, 3)])
def test_group_conv_equals_grouped_conv2d(channels, filters, groups):
    # Conv2D(groups=g) has kernel (k, k, C/g, F); GroupConv2D holds the same numbers as a
    # depthwise kernel (k, k, C, F/g): [..., g*(C/g) + r, j] <-> W[..., r, g*(F/g) + j].
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, channels)).astype("float32")
    reference = keras.layers.Conv2D(filters, 3, padding="same", groups=groups, use_bias=False)
    expected = keras.ops.convert_to_numpy(reference(x))
    layer = GroupConv2D(filters, 3, groups=groups)
    layer.build(x.shape)
    w = keras.ops.convert_to_numpy(reference.kernel)
    per_in, per_out = channels // groups, filters // groups
    kernel = np.zeros(layer.kernel.shape, "float32")
    for g in range(groups):
        for r in range(per_in):
            kernel[:, :, g * per_in + r, :] = w[:, :, r, g * per_out:(g + 1) * per_out]
    layer.kernel.assign(kernel)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-4,
                               atol=1e-5)
    assert int(np.prod(layer.kernel.shape)) == int(np.prod(reference.kernel.shape))
    assert GroupConv2D.from_config(layer.get_config()).groups == groups


# ---- training and saving -------------------------------------------------------------------

# Eager: tracing the step of 17 DiCE units (~340 weights) takes TensorFlow tens of seconds on
# this CPU and says nothing more about the model; graph mode is exercised on a single unit below
# and by the JAX test, which jit-compiles this model's step.
trained_tiny = trained_tiny_fixture(lambda: kidney_segnet((32, 32, 3), filters=4),
                                    images(2, (32, 32, 3)), images(2, (32, 32, 1), seed=1),
                                    "mse", "kidney")


def test_one_training_step(trained_tiny):
    model, _, before, loss, _ = trained_tiny
    assert np.isfinite(loss)
    assert_most_weights_changed(before, model)


def test_save_and_reload_give_identical_predictions(trained_tiny):
    model, x, _, _, tmp = trained_tiny
    assert assert_reloads_identically(model, x, tmp / "kidney_segnet.keras").name == \
        "kidney_segnet"


def test_jax_backend_builds_and_trains(jax_run):
    # Started when this module began (see jax_run); a tiny model, one SGD step.
    assert "ok" in _jax_backend.finish(jax_run)
