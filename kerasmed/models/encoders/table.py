"""The encoder table: ``BACKBONES``, one ``BackboneSpec`` per ``keras.applications`` encoder, of
what the backbone networks (``Unet``, ``FPN``, ``Linknet``, ``PSPNet``, ``UnetPlusPlus``,
``DeepLabV3Plus``, ``transunet``) need to know about it:

- the layers tapped for skip features at stride 2, 4, 8 and 16 (the encoder's output is the
  stride-32 feature). A tap is a layer name (its output), an integer (a layer index, for the
  backbones whose layers ``keras.applications`` names automatically, as segmentation_models
  does), ``"input_of:NAME"`` (the tensor entering layer NAME, for ConvNeXt, whose block outputs
  are ``+`` operations rather than layers) or ``None`` (no feature at that stride: ConvNeXt's
  4x4 stride-4 stem has no stride-2 feature). The taps are segmentation_models 1.0.1's where it
  has the backbone (VGG, DenseNet, MobileNetV2, InceptionV3, InceptionResNetV2, EfficientNet),
  otherwise the last layer at each resolution (for the pre-activation ResNetV2, the BN-ReLU
  "preact" that starts the strided block, as segmentation_models does for its own ResNets);
  ``tests/test_models_backbones.py`` checks every tap's resolution;
- the input scaling the ImageNet weights were trained with (one of
  ``preprocessing.PREPROCESSING_MODES``);
- the ImageNet weights file Keras downloads (name, URL and hash, exactly those of
  ``keras.applications``; ``weights`` fetches it or fails naming it);
- whether every stride is exact (``aligned``): InceptionV3 and InceptionResNetV2 use 'valid'
  padding, so their features are a few pixels smaller than H/stride; kerasmed resizes them
  (bilinearly, no parameters) to H/stride.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

from kerasmed.names import unknown_name_message

__all__ = ["BackboneSpec", "BACKBONES", "get_backbone_spec", "list_backbones", "SKIP_STRIDES"]

SKIP_STRIDES = (2, 4, 8, 16)

_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class BackboneSpec:
    """One encoder of ``keras.applications`` and how kerasmed uses it.

    ``taps`` maps stride (2, 4, 8, 16) to a tap (see the module docstring); ``preprocessing`` is
    one of ``PREPROCESSING_MODES``; ``weights_file`` may contain ``{rows}`` (MobileNetV2, whose
    weights file depends on the input size); ``aligned`` is False when features are not exactly
    H/stride; ``min_size`` is the smallest input side ``keras.applications`` accepts.
    """

    name: str
    application: str
    preprocessing: str
    taps: dict
    weights_file: str
    weights_url: str
    weights_hash: str | None = None
    aligned: bool = True
    min_size: int = 32
    notes: str = field(default="", compare=False)

    def constructor(self):
        """The ``keras.applications`` function that builds this encoder."""
        return getattr(keras.applications, self.application)


def _spec(name, application, preprocessing, taps, folder, weights_file, weights_hash, **kw):
    url = (folder if folder.startswith("https://") else _KA + folder + "/") + weights_file
    return BackboneSpec(name, application, preprocessing, dict(zip(SKIP_STRIDES, taps)),
                        weights_file, url, weights_hash, **kw)


def _tf_kernels(stem):
    return f"{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"


_TABLE = [
    # VGG (Simonyan & Zisserman 2015): the encoder ends in block5_pool, so Unet and Linknet add
    # segmentation_models' two 512-filter center convs.
    _spec("vgg16", "VGG16", "caffe",
          ("block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"),
          "vgg16", _tf_kernels("vgg16"), "6d6bbae143d832006294945121d1f1fc"),
    _spec("vgg19", "VGG19", "caffe",
          ("block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4"),
          "vgg19", _tf_kernels("vgg19"), "253f8cb515780f3b799900260a226db6"),
    # ResNet (He et al. 2016): block outputs, last at each resolution.
    _spec("resnet50", "ResNet50", "caffe",
          ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
          "resnet", _tf_kernels("resnet50"), "4d473c1dd8becc155b73f8504c6f6626"),
    _spec("resnet101", "ResNet101", "caffe",
          ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block23_out"),
          "resnet", _tf_kernels("resnet101"), "88cf7a10940856eca736dc7b7e228a21"),
    _spec("resnet152", "ResNet152", "caffe",
          ("conv1_relu", "conv2_block3_out", "conv3_block8_out", "conv4_block36_out"),
          "resnet", _tf_kernels("resnet152"), "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    # ResNetV2 (pre-activation; the stride is in the last block of each stack): the BN-ReLU
    # preact that starts the strided block; stride 2 has only the stem conv (no BN-ReLU).
    _spec("resnet50v2", "ResNet50V2", "tf",
          ("conv1_conv", "conv2_block3_preact_relu", "conv3_block4_preact_relu",
           "conv4_block6_preact_relu"),
          "resnet", _tf_kernels("resnet50v2"), "fac2f116257151a9d068a22e544a4917"),
    _spec("resnet101v2", "ResNet101V2", "tf",
          ("conv1_conv", "conv2_block3_preact_relu", "conv3_block4_preact_relu",
           "conv4_block23_preact_relu"),
          "resnet", _tf_kernels("resnet101v2"), "c0ed64b8031c3730f411d2eb4eea35b5"),
    _spec("resnet152v2", "ResNet152V2", "tf",
          ("conv1_conv", "conv2_block3_preact_relu", "conv3_block8_preact_relu",
           "conv4_block36_preact_relu"),
          "resnet", _tf_kernels("resnet152v2"), "ed17cf2e0169df9d443503ef94b23b33"),
    # DenseNet (Huang et al. 2017): the transition convs before each pooling (segmentation_models'
    # layer indices 4, 51, 139, 311/367/479, by name).
    _spec("densenet121", "DenseNet121", "torch",
          ("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv"),
          "densenet", _tf_kernels("densenet121"), "30ee3e1110167f948a6b9946edeeb738"),
    _spec("densenet169", "DenseNet169", "torch",
          ("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv"),
          "densenet", _tf_kernels("densenet169"), "b8c4d4c20dd625c148057b9ff1c1176b"),
    _spec("densenet201", "DenseNet201", "torch",
          ("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv"),
          "densenet", _tf_kernels("densenet201"), "c13680b51ded0fb44dff2d8f86ac8bb1"),
    # MobileNetV2 (Sandler et al. 2018): the expand ReLU before each strided depthwise conv.
    # Keras picks the weights file by input size: {rows} is 96/128/160/192/224 for a square
    # input of that size, otherwise 224. The file has no hash in keras.applications.
    _spec("mobilenetv2", "MobileNetV2", "tf",
          ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
           "block_13_expand_relu"),
          "mobilenet_v2",
          "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5", None),
    # MobileNetV3 (Howard et al. 2019): keras.applications names these layers automatically
    # (activation_N, re_lu_N), so the taps are layer indices; the model rescales 0..255 itself.
    _spec("mobilenetv3small", "MobileNetV3Small", "raw255", (4, 19, 37, 111), "mobilenet_v3",
          "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
          "d3e8ec802a04aa4fc771ee12a9a9b836"),
    _spec("mobilenetv3large", "MobileNetV3Large", "raw255", (13, 31, 76, 141), "mobilenet_v3",
          "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
          "07fb09a5933dd0c8eaafa16978110389"),
    # Inception (Szegedy et al. 2016/2017): segmentation_models' layer indices; 'valid' padding.
    _spec("inceptionv3", "InceptionV3", "tf", (9, 16, "mixed2", "mixed7"), "inception_v3",
          _tf_kernels("inception_v3"), "bcbd6486424b2319ff4ef7d526e38f63",
          aligned=False, min_size=75),
    _spec("inceptionresnetv2", "InceptionResNetV2", "tf",
          (9, 16, "block35_10_ac", "block17_20_ac"), "inception_resnet_v2",
          _tf_kernels("inception_resnet_v2"), "d19885ff4a710c122648d3b5c3b684e4",
          aligned=False, min_size=75),
]

# EfficientNet (Tan & Le 2019): segmentation_models' taps, the expand activation of the first
# block of the next stage. The model rescales and normalises 0..255 itself.
_EFFICIENTNET_HASHES = ("50bc09e76180e00e4465e1a485ddc09d", "74c4e6b3e1f6a1eea24c589628592432",
                        "111f8e2ac8aa800a7a99e3239f7bfb39", "af6d107764bb5b1abb91932881670226",
                        "ebc24e6d6c33eaebbd558eafbeedf1ba", "38879255a25d3c92d5e44e04ae6cec6f",
                        "9ecce42647a20130c1f39a5d4cb75743", "cbcfe4450ddf6f3ad90b1b398090fe4a")
for _i, _hash in enumerate(_EFFICIENTNET_HASHES):
    _TABLE.append(_spec(f"efficientnetb{_i}", f"EfficientNetB{_i}", "raw255",
                        ("block2a_expand_activation", "block3a_expand_activation",
                         "block4a_expand_activation", "block6a_expand_activation"),
                        "https://storage.googleapis.com/keras-applications/",
                        f"efficientnetb{_i}_notop.h5", _hash))

# EfficientNetV2 (Tan & Le 2021): last layer at each resolution (stages 1-3 are fused MBConv).
for _variant, _s2, _s4, _hash in [
        ("b0", "block1a_project_activation", "block2b_add", "893217f2bb855e2983157299931e43ff"),
        ("b1", "block1b_add", "block2c_add", "0e80663031ca32d657f9caa404b6ec37"),
        ("b2", "block1b_add", "block2c_add", "1dfe2e7a5d45b6632553a8961ea609eb"),
        ("b3", "block1b_add", "block2c_add", "f6abf7b5849ac99a89b50dd3fd532856"),
        ("s", "block1b_add", "block2d_add", "af0682fb74e8c54910f2d4393339c070"),
        ("m", "block1c_add", "block2e_add", "1b8dc055df72dde80d614482840fe342"),
        ("l", "block1d_add", "block2g_add", "b0b66b5c863aef5b46e8608fe1711615")]:
    _TABLE.append(_spec(f"efficientnetv2{_variant}", f"EfficientNetV2{_variant.upper()}",
                        "raw255", (_s2, _s4, "block4a_expand_activation",
                                   "block6a_expand_activation"),
                        "efficientnet_v2", f"efficientnetv2-{_variant}_notop.h5", _hash))

# ConvNeXt (Liu et al. 2022): each stage's output enters the next downsampling layer; the 4x4
# stride-4 stem leaves no stride-2 feature. The model normalises 0..255 itself.
for _size, _app, _hash in [
        ("tiny", "Tiny", "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
        ("small", "Small", "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
        ("base", "Base", "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
        ("large", "Large", "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
        ("xlarge", "XLarge", "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05")]:
    _TABLE.append(_spec(f"convnext_{_size}", f"ConvNeXt{_app}", "raw255",
                        (None,) + tuple(f"input_of:convnext_{_size}_downsampling_block_{i}"
                                        for i in range(3)),
                        "convnext", f"convnext_{_size}_notop.h5", _hash))

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in _TABLE}
del _i, _hash, _variant, _s2, _s4, _size, _app


def list_backbones() -> list[str]:
    """Names accepted as ``backbone_name``, in table order."""
    return list(BACKBONES)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The table entry of ``name`` (case-insensitive); ``ValueError`` names the nearest one."""
    key = str(name).lower()
    if key not in BACKBONES:
        raise ValueError(unknown_name_message("backbone", name, BACKBONES))
    return BACKBONES[key]
