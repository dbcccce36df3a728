"""UNet++ and DeepLabV3+ on keras.applications encoders: the nested decoder's nodes, the dilated
encoder (strides, weights kept), segmentation_models_pytorch parity of the decoders, a training
step and a .keras round trip, and the smp configurations at 256x256 (build only)."""

import keras
import numpy as np
import pytest

from _model_checks import train_step_and_round_trip
from kerasmed.models import DeepLabV3Plus, UnetPlusPlus, build, default_config
from kerasmed.models.encoders import build_encoder
from kerasmed.models.deeplab import dilated_encoder

# Trainable parameters of segmentation_models_pytorch's UnetPlusPlusDecoder / DeepLabV3PlusDecoder
# plus its head (one class; UNet++: 3x3 conv, DeepLabV3+: 1x1 conv), counted by instantiating
# the decoder classes of smp's source (github.com/qubvel-org/segmentation_models.pytorch at
# 5006616357631a48c7c8e11977cf5abb00803590) with the channels of kerasmed's encoder taps.
SMP_DECODER_PARAMS = {
    ("backbone_unet_plus_plus", "resnet50"): 25_477_713,
    ("backbone_unet_plus_plus", "vgg16"): 24_632_657,       # with smp's VGG center block
    ("deeplabv3plus", "resnet50"): 3_169_553,
    ("deeplabv3plus", "mobilenetv2"): 2_160_401,
}
SMALL = [key for key in SMP_DECODER_PARAMS if key[1] != "resnet50"]  # resnet50: at 256x256


def _trainable(model_or_layer):
    return sum(int(np.prod(w.shape)) for w in model_or_layer.trainable_weights)


@pytest.mark.parametrize("name,backbone", SMALL)
def test_decoders_match_segmentation_models_pytorch(name, backbone):
    """Parameter counts do not depend on the input size, so 64x64 is enough."""
    model = build(name, backbone_name=backbone, input_shape=(64, 64, 3), encoder_weights=None)
    decoder = _trainable(model) - _trainable(model.get_layer("encoder"))
    assert decoder == SMP_DECODER_PARAMS[(name, backbone)]
    keras.backend.clear_session()


def test_unet_plus_plus_nodes_train_and_round_trip(tmp_path):
    model = build("backbone_unet_plus_plus", backbone_name="mobilenetv3small",
                  input_shape=(64, 64, 3), encoder_weights=None)
    assert model.name == "unet_plus_plus_mobilenetv3small"
    assert model.output_shape == (None, 64, 64, 1)
    nodes = {layer.name[len("decoder_"):-len("b_conv")] for layer in model.layers
             if layer.name.startswith("decoder_x") and layer.name.endswith("b_conv")}
    assert nodes == {f"x{i}_{j}" for j in range(1, 5) for i in range(5 - j)}  # 10 nested nodes
    # main path X(i, 4 - i) has decoder_filters; the others keep the encoder's width
    assert model.get_layer("decoder_x3_1b_conv").filters == 256
    assert model.get_layer("decoder_x0_4b_conv").filters == 32
    stride4 = model.get_layer("encoder").output[1].shape[-1]
    assert model.get_layer("decoder_x1_1b_conv").filters == stride4   # encoder width
    concat = model.get_layer("decoder_x0_3_concat")
    assert len(concat.input) == 4                                  # Up(X(1,2)), X(0,0..2)
    assert model.get_layer("decoder_final_upsampling").output.shape == (None, 64, 64, 32)
    train_step_and_round_trip(model, tmp_path)


def test_unet_plus_plus_without_a_stride_2_feature():
    """ConvNeXt has no stride-2 tap: level 0 keeps only its main-path node."""
    model = UnetPlusPlus("convnext_tiny", input_shape=(64, 64, 1), encoder_weights=None)
    names = {layer.name for layer in model.layers}
    assert "decoder_x0_4b_conv" in names and "decoder_x0_1b_conv" not in names
    assert "decoder_x0_4_concat" not in names and model.output_shape == (None, 64, 64, 1)
    keras.backend.clear_session()


def test_dilated_encoder_keeps_weights_and_resolution():
    """Output stride 8: same weights as the undilated encoder (copied, every kernel shape
    unchanged), the same low-level (stride-4) features, the last feature at H/8. ConvNeXt
    has nested downsampling models and residual adds that are keras.ops operations; the
    DeepLabV3+ test below covers MobileNetV2's ZeroPadding + 'valid' strided convs. Every
    encoder of the table was checked at output strides 16 and 8 (docs/models.md)."""
    backbone = "convnext_tiny"
    reference = build_encoder(backbone, (64, 64, 3), None, (4, 32)).model
    x = np.random.default_rng(0).random((1, 64, 64, 3)).astype("float32") * 255
    ref_low, ref_high = (keras.ops.convert_to_numpy(t) for t in reference(x))
    for output_stride in (8,):
        encoder = dilated_encoder(backbone, (64, 64, 3), None, output_stride)
        encoder.model.set_weights(reference.get_weights())
        low, high = (keras.ops.convert_to_numpy(t) for t in encoder.model(x))
        assert high.shape == (1, 64 // output_stride, 64 // output_stride, ref_high.shape[-1])
        np.testing.assert_allclose(low, ref_low, rtol=1e-5, atol=1e-4)
        assert np.isfinite(high).all() and np.abs(high).max() > 0
        dilated = [layer for layer in encoder.model.layers
                   if max(getattr(layer, "dilation_rate", (1,))) > 1]
        assert dilated and all(max(getattr(layer, "strides", (1,))) == 1 for layer in dilated)
    keras.backend.clear_session()


def test_deeplabv3plus_trains_round_trips_and_keeps_encoder_weights(tmp_path):
    reference = keras.applications.MobileNetV2(include_top=False, weights=None,
                                               input_shape=(64, 64, 3))
    path = tmp_path / "mobilenetv2.weights.h5"
    reference.save_weights(path)
    model = build("deeplabv3plus", backbone_name="mobilenetv2", input_shape=(64, 64, 3),
                  encoder_weights=str(path), encoder_output_stride=8)
    for got, want in zip(model.get_layer("encoder").get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert model.name == "deeplabv3plus_mobilenetv2" and model.output_shape == (None, 64, 64, 1)
    assert model.get_layer("aspp_concat").output.shape == (None, 8, 8, 5 * 256)
    assert model.get_layer("aspp_rate24_sepconv").dilation_rate == (24, 24)
    assert model.get_layer("decoder_low_level_conv").output.shape == (None, 16, 16, 48)
    assert model.get_layer("decoder_upsampling").output.shape == (None, 16, 16, 256)
    train_step_and_round_trip(model, tmp_path)


def test_deeplabv3plus_options():
    model = DeepLabV3Plus("vgg16", input_shape=(64, 64, 1), classes=3, encoder_weights=None,
                          decoder_aspp_separable=False, decoder_atrous_rates=(6, 12, 18))
    assert model.output_shape == (None, 64, 64, 3)
    assert model.get_layer("aspp_rate6_conv").kernel.shape == (3, 3, 512, 256)
    assert model.get_layer("aspp_concat").output.shape == (None, 4, 4, 1280)
    with pytest.raises(ValueError, match="encoder_output_stride"):
        DeepLabV3Plus("vgg16", encoder_weights=None, encoder_output_stride=32)
    with pytest.raises(ValueError, match="divisible"):
        DeepLabV3Plus("vgg16", input_shape=(72, 72, 3), encoder_weights=None)
    keras.backend.clear_session()


def test_smp_configurations_at_256_build():
    """smp's defaults (UNet++ decoder_channels (256, 128, 64, 32, 16); DeepLabV3+ output
    stride 16, 256 channels, rates (12, 24, 36), upsampling 4) on ResNet50, 256x256x3,
    one class: build only."""
    for name, total in (("backbone_unet_plus_plus", 49_045_713), ("deeplabv3plus", 26_734_897)):
        assert default_config(name)["backbone_name"] == "resnet50"
        model = build(name, input_shape=(256, 256, 3), encoder_weights=None)
        assert model.count_params() == total and model.output_shape == (None, 256, 256, 1)
        decoder = _trainable(model) - _trainable(model.get_layer("encoder"))
        assert decoder == SMP_DECODER_PARAMS[(name, "resnet50")]
        del model
        keras.backend.clear_session()
