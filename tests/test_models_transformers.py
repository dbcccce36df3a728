"""TransUNet and Swin-Unet: the window machinery against NumPy references, builds at the
smallest sizes their patching allows and at the papers' sizes, one training step, .keras round
trips, and (in one subprocess) the same on JAX."""

import itertools

import _jax_backend
from _model_checks import train_step_and_round_trip
import keras
import numpy as np
import pytest

from kerasmed.models import build, default_config, get_spec
from kerasmed.models.encoders import WeightsUnavailableError
from kerasmed.models.transformer_blocks import (DepthToSpace, SpaceToDepth, WindowAttention,
                                                relative_position_index, shifted_window_mask,
                                                window_layout, window_partition, window_reverse)

TINY_SWIN = dict(input_shape=(32, 32, 3), filters=8, depth=1, blocks=(2, 1), head_dim=4,
                 window_size=4)
TINY_TRANSUNET = dict(input_shape=(32, 32, 3), encoder="cnn", filters=4, hidden_size=16,
                      num_layers=1, num_heads=2, mlp_dim=32, decoder_filters=(16, 8, 8, 4),
                      decoder_conv_filters=16)

JAX_CODE = """
    import numpy as np, keras, tempfile, os
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build
    from kerasmed import losses
    cases = {
        "swin_unet": %r,
        "transunet": %r,
    }
    for family in ("backbone_unet_plus_plus", "deeplabv3plus"):
        cases[family] = dict(backbone_name="mobilenetv3small", input_shape=(64, 64, 3),
                             encoder_weights=None)
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    for name, params in cases.items():
        model = build(name, **params)
        x = rng.random((2, *model.inputs[0].shape[1:]), dtype=np.float32)
        y = (rng.random((2, *model.outputs[0].shape[1:])) > 0.5).astype("float32")
        model.compile("adam", loss=losses.get("bce_dice"))
        before = [w.copy() for w in model.get_weights()]
        loss = float(model.train_on_batch(x, y))
        assert np.isfinite(loss), (name, loss)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), name
        path = os.path.join(tmp, name + ".keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        np.testing.assert_allclose(model.predict(x, verbose=0), restored.predict(x, verbose=0),
                                   atol=1e-6, err_msg=name)
        print(name, "ok", flush=True)
""" % (TINY_SWIN, TINY_TRANSUNET)

# The pretrained-backbone UNet++ and DeepLabV3+ run on JAX on the smallest encoder.
NETWORKS = ("swin_unet", "transunet", "backbone_unet_plus_plus", "deeplabv3plus")

jax_run = _jax_backend.module_fixture(JAX_CODE)


# ------------------------------------------------------------------ NumPy references

def _np_windows(x, w):
    """(B, H, W, C) -> (B * nW, w * w, C) by explicit loops: batch, window row, window column,
    then the window's pixels in row-major order."""
    b, h, wd, c = x.shape
    out = [x[n, i:i + w, j:j + w].reshape(w * w, c)
           for n in range(b) for i in range(0, h, w) for j in range(0, wd, w)]
    return np.stack(out)


def _np_region(i, size, window, shift):
    """Swin's region of shifted row (or column) i: 0 before the last window, 1 inside it
    before the shift, 2 in the last ``shift`` rows."""
    if i < size - window:
        return 0
    return 1 if i < size - shift else 2


def test_window_partition_round_trip_against_numpy():
    x = np.random.default_rng(0).random((2, 8, 12, 3)).astype("float32")
    windows = keras.ops.convert_to_numpy(window_partition(keras.ops.convert_to_tensor(x), 4))
    np.testing.assert_array_equal(windows, _np_windows(x, 4))
    back = window_reverse(keras.ops.convert_to_tensor(windows), 4, 8, 12)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(back), x)


@pytest.mark.parametrize("size,window,shift", [(8, 4, 2), (14, 7, 3), (6, 4, 2), (6, 4, 0)])
def test_shifted_window_mask_against_numpy(size, window, shift):
    """Two tokens of a window attend to each other iff they come from the same region of the
    shifted map and the key is not padding (padded to a multiple of the window)."""
    mask = shifted_window_mask(size, size, window, shift)
    w, s, hp, wp = window_layout(size, size, window, shift)
    assert (w, s) == (window, shift) and hp % w == 0
    # label every position of the padded, shifted map, and say whether it is padding
    label = np.zeros((hp, wp), int)
    padding = np.zeros((hp, wp), bool)
    for i, j in itertools.product(range(hp), range(wp)):
        label[i, j] = (3 * _np_region(i, hp, w, s) + _np_region(j, wp, w, s)) if s else 0
        oi, oj = (i + s) % hp, (j + s) % wp          # where the shifted token came from
        padding[i, j] = oi >= size or oj >= size
    lab = _np_windows(label[None, ..., None], w)[..., 0]
    pad = _np_windows(padding[None, ..., None], w)[..., 0]
    expected = np.where(lab[:, :, None] != lab[:, None, :], -100.0, 0.0)
    expected += np.where(pad[:, None, :], -100.0, 0.0)
    if not s and size % window == 0:
        assert mask is None
        return
    np.testing.assert_array_equal(mask, expected)
    assert (mask[:, np.arange(w * w), np.arange(w * w)][~pad] == 0).all()  # a real token sees itself


def test_relative_position_index_against_loops():
    w = 3
    index = relative_position_index(w)
    for (a, b) in itertools.product(range(w * w), repeat=2):
        dy, dx = a // w - b // w, a % w - b % w
        assert index[a, b] == (dy + w - 1) * (2 * w - 1) + (dx + w - 1)


def _np_window_attention(layer, x):
    """Swin's (S)W-MSA by brute force in image coordinates: each query attends to the keys of
    its window in the shifted map that lie in the same region (and are not padding)."""
    qkv_w, qkv_b = [keras.ops.convert_to_numpy(v) for v in layer.qkv.weights]
    proj_w, proj_b = [keras.ops.convert_to_numpy(v) for v in layer.proj.weights]
    table = keras.ops.convert_to_numpy(layer.relative_position_bias_table)
    _, height, width, c = x.shape
    w, s, hp, wp = window_layout(height, width, layer.window_size, layer.shift_size)
    heads, d = layer.num_heads, c // layer.num_heads
    qkv = x @ qkv_w + qkv_b
    q, k, v = (qkv[..., i * c:(i + 1) * c].reshape(*x.shape[:3], heads, d) for i in range(3))
    out = np.zeros_like(x)

    def shifted(i, j):  # position of token (i, j) in the padded, shifted map
        return (i - s) % hp, (j - s) % wp

    def region(i, j):
        si, sj = shifted(i, j)
        return (si // w, sj // w, _np_region(si, hp, w, s), _np_region(sj, wp, w, s)) if s \
            else (si // w, sj // w)

    pixels = list(itertools.product(range(height), range(width)))
    for n in range(x.shape[0]):
        for (i, j) in pixels:
            keys = [(a, b) for (a, b) in pixels if region(a, b) == region(i, j)]
            si, sj = shifted(i, j)
            for h in range(heads):
                logits = []
                for (a, b) in keys:
                    sa, sb = shifted(a, b)
                    dy, dx = si % w - sa % w, sj % w - sb % w
                    bias = table[(dy + w - 1) * (2 * w - 1) + dx + w - 1, h]
                    logits.append(q[n, i, j, h] @ k[n, a, b, h] / np.sqrt(d) + bias)
                p = np.exp(np.array(logits) - max(logits))
                p /= p.sum()
                out[n, i, j, h * d:(h + 1) * d] = sum(pk * v[n, a, b, h]
                                                      for pk, (a, b) in zip(p, keys))
    return out @ proj_w + proj_b


@pytest.mark.parametrize("size,window,shift", [(8, 4, 2), (6, 4, 0), (6, 4, 2)])
def test_window_attention_against_brute_force(size, window, shift):
    """The layer's shift, padding, partition, relative position bias and mask give exactly
    the attention Swin defines (W-MSA, SW-MSA, and a map padded to a multiple of the window)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, size, size, 4)).astype("float32")
    layer = WindowAttention(2, window, shift)
    layer(x)
    table = layer.relative_position_bias_table
    table.assign(rng.normal(size=table.shape).astype("float32"))  # make the bias matter
    got = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(got, _np_window_attention(layer, x), rtol=1e-4, atol=1e-5)


def test_space_depth_layers_are_inverse_and_in_swins_order():
    x = np.random.default_rng(2).random((1, 4, 6, 3)).astype("float32")
    merged = keras.ops.convert_to_numpy(SpaceToDepth(2)(x))
    reference = np.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                                x[:, 1::2, 1::2]], axis=-1)   # Swin's PatchMerging order
    np.testing.assert_array_equal(merged, reference)
    y = np.random.default_rng(3).random((1, 2, 3, 12)).astype("float32")
    expanded = keras.ops.convert_to_numpy(DepthToSpace(2)(y))
    for p1, p2 in itertools.product(range(2), repeat=2):   # b h w (p1 p2 c) -> b (h p1) (w p2) c
        np.testing.assert_array_equal(expanded[:, p1::2, p2::2], y[..., (2 * p1 + p2) * 3:
                                                                     (2 * p1 + p2 + 1) * 3])


# ------------------------------------------------------------------ models


def test_swin_unet_tiny_builds_trains_and_round_trips(tmp_path):
    """32x32 with 4x4 patches: 8x8 tokens (W-MSA, then SW-MSA in 4x4 windows), a 4x4
    bottleneck (one window), patch expanding back and the final 4x expanding."""
    model = build("swin_unet", **TINY_SWIN)
    assert model.name == "swin_unet" and model.output_shape == (None, 32, 32, 1)
    assert model.get_layer("merge1_reduction").output.shape == (None, 4, 4, 16)
    assert model.get_layer("bottleneck_block1_attention").output.shape == (None, 4, 4, 16)
    assert model.get_layer("expand1_norm").output.shape == (None, 8, 8, 8)
    assert model.get_layer("final_expand_norm").output.shape == (None, 32, 32, 8)
    shifted = model.get_layer("decoder1_block2_attention")
    assert shifted.shift_size == 2 and shifted._mask is not None
    assert model.get_layer("encoder1_block1_attention")._mask is None
    train_step_and_round_trip(model, tmp_path, keras.optimizers.Adam(1e-3))


def test_swin_unet_skips_and_classes():
    model = build("swin_unet", **dict(TINY_SWIN, classes=3, skips="embeddings", depth=2,
                                      blocks=1))
    assert model.output_shape == (None, 32, 32, 3)
    bottleneck = model.get_layer("bottleneck_block1_attention")
    assert (bottleneck._window, bottleneck._shift) == (2, 0)   # a 2x2 map is one window
    assert model.layers[-1].activation.__name__ == "softmax"
    concat = model.get_layer("decoder1_concat")
    assert concat.input[1] is model.get_layer("patch_embed_norm").output  # the authors' skip
    with pytest.raises(ValueError, match="divisible by"):
        build("swin_unet", input_shape=(48, 48, 3), depth=3)


def test_transunet_tiny_variants_build_and_train(tmp_path):
    cnn = build("transunet", **TINY_TRANSUNET)
    assert cnn.output_shape == (None, 32, 32, 1)
    assert cnn.get_layer("transformer_position_embedding").embedding.shape == (1, 4, 16)
    assert cnn.get_layer("decoder_stage3_concat").input[1].shape == (None, 16, 16, 4)
    train_step_and_round_trip(cnn, tmp_path, keras.optimizers.Adam(1e-3))
    vit_only = build("transunet", **dict(TINY_TRANSUNET, encoder=None))
    assert vit_only.get_layer("transformer_patch_embed").kernel.shape == (16, 16, 3, 16)
    assert not any(layer.name.endswith("_concat") for layer in vit_only.layers)


def test_transunet_imagenet_goes_through_the_offline_weights_path(tmp_path, monkeypatch):
    from keras.src.backend import config
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))        # an empty Keras cache
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no internet")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsUnavailableError, match="resnet50_weights_tf_dim_ordering"):
        build("transunet", input_shape=(64, 64, 3), num_layers=1, encoder_weights="imagenet")


def test_heads_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        for name, params in (("swin_unet", TINY_SWIN), ("transunet", TINY_TRANSUNET)):
            model = build(name, **params)
            assert model.get_layer("encoder1_block1_attention" if name == "swin_unet" else
                                   "transformer_layer1_attention").compute_dtype == "float16"
            assert model.outputs[0].dtype == "float32", name
            x = np.random.default_rng(0).random((1, 32, 32, 3)).astype("float32")
            assert np.isfinite(keras.ops.convert_to_numpy(model(x))).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_paper_configurations_build_with_their_parameter_counts():
    """Swin-T (224x224) and R50-ViT-B/16 (224x224), one class; build only."""
    model = build("swin_unet")
    assert model.count_params() == 27_168_133        # authors' code: 27,168,132 (no head bias)
    assert model.get_layer("bottleneck_block1_attention").output.shape == (None, 7, 7, 768)
    assert [model.get_layer(f"encoder{i}_block1_attention").num_heads for i in (1, 2, 3)] == \
        [3, 6, 12]
    del model
    keras.backend.clear_session()
    assert default_config("transunet")["encoder_weights"] == "imagenet"
    model = build("transunet")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (model.count_params(), trainable) == (101_957_841, 101_924_369)
    encoder = sum(int(np.prod(w.shape)) for w in model.get_layer("encoder").trainable_weights)
    assert trainable - encoder == 93_381_073   # the authors' code without its R50: the same
    assert model.get_layer("transformer_position_embedding").embedding.shape == (1, 196, 768)
    del model
    keras.backend.clear_session()


def test_jax_backend_trains_and_reloads_the_new_networks(jax_run):
    """Last in the module: the JAX subprocess has run beside the tests above."""
    out = _jax_backend.finish(jax_run)
    assert sorted(line.split()[0] for line in out.splitlines() if line.endswith(" ok")) == \
        sorted(NETWORKS)
    assert all(get_spec(name) for name in NETWORKS)
