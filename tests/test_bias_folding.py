"""Conv biases before batch norm are folded away without changing the function computed."""

import keras
import numpy as np
from keras import layers

from kerasmed.models import build
from kerasmed.models.encoders import build_encoder
from kerasmed.models.encoders.bias_folding import fold_conv_biases, foldable_convolutions

SIZE = 64


def _perturbed_resnet50(seed=0):
    """keras.applications ResNet50 with random non-zero conv biases and BN statistics, so a
    fold that dropped a bias or got a sign wrong shows in the outputs."""
    app = keras.applications.ResNet50(include_top=False, weights=None,
                                      input_shape=(SIZE, SIZE, 3))
    rng = np.random.default_rng(seed)
    for layer in app.layers:
        if isinstance(layer, layers.Conv2D):
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
        if isinstance(layer, layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(size=shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=shape).astype("float32"))
    return app


def _images(seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


def _relative_error(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(a).max())


def test_resnet50_folded_computes_the_same_in_inference_and_training():
    app = _perturbed_resnet50()
    folds = foldable_convolutions(app)
    assert len(folds) == 53 and folds["conv1_conv"] == "conv1_bn"
    folded = fold_conv_biases(app)
    assert foldable_convolutions(folded) == {}
    assert app.count_params() - folded.count_params() == sum(
        app.get_layer(conv).filters for conv in folds)
    assert [layer.name for layer in folded.layers] == [layer.name for layer in app.layers]
    x = _images()
    assert _relative_error(app(x, training=False), folded(x, training=False)) < 1e-5
    # training mode: batch statistics absorb the bias (up to float32 rounding over 50 layers)
    assert _relative_error(app(x, training=True), folded(x, training=True)) < 2e-3


def test_build_encoder_loads_weights_then_folds(tmp_path):
    """The real loading path: keras.applications reads the weights file, then the biases are
    folded; the encoder's stride-32 output is the original network's."""
    app = _perturbed_resnet50(seed=2)
    path = tmp_path / "resnet50_notop.weights.h5"
    app.save_weights(path)
    encoder = build_encoder("resnet50", (SIZE, SIZE, 3), weights=str(path))
    assert foldable_convolutions(encoder.model) == {}
    x = _images(seed=3)
    assert _relative_error(app(x, training=False), encoder.model(x)[-1]) < 1e-5


def test_nothing_to_fold_returns_the_model_itself():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="no_bias")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    tapped = layers.Conv2D(4, 1, name="tapped")(x)         # a model output
    shared = layers.Conv2D(4, 1, name="shared")(x)         # two consumers
    y = layers.Add(name="add")([layers.BatchNormalization(name="bn2")(shared), shared])
    z = layers.Conv2D(4, 1, name="before_relu")(y)         # feeds no BN
    model = keras.Model(inputs, [layers.BatchNormalization(name="bn3")(tapped),
                                 tapped, layers.ReLU(name="relu")(z)])
    assert foldable_convolutions(model) == {}
    assert fold_conv_biases(model) is model


def test_only_the_bn_fed_conv_of_a_small_model_is_folded():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="fed_to_bn")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    out = layers.Conv2D(2, 1, name="head")(x)
    model = keras.Model(inputs, out)
    model.get_layer("fed_to_bn").bias.assign(np.arange(4, dtype="float32"))
    folded = fold_conv_biases(model)
    assert foldable_convolutions(model) == {"fed_to_bn": "bn"}
    assert folded.get_layer("fed_to_bn").bias is None and folded.get_layer("head").use_bias
    np.testing.assert_allclose(np.asarray(folded.get_layer("bn").moving_mean), -np.arange(4))
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(model(x), folded(x), atol=1e-5)


def test_every_resnet_v1_family_model_has_no_bias_before_a_batch_norm():
    """(Saving and reloading a folded ResNet model is checked with the Linknet-resnet50 of
    test_every_backbone_in_every_family.)"""
    for name in ("backbone_unet", "deeplabv3plus"):
        model = build(name, input_shape=(SIZE, SIZE, 3), backbone_name="resnet50",
                      encoder_weights=None)
        assert foldable_convolutions(model.get_layer("encoder")) == {}
        del model
        keras.backend.clear_session()
