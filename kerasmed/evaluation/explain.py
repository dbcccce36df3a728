"""Where is the network looking? Grad-CAM for classifiers and Seg-Grad-CAM for segmentation.

Grad-CAM (Selvaraju et al., ICCV 2017): the feature maps A_k of a convolutional layer are
weighted by the spatial mean of the gradient of a class score with respect to them, summed
and rectified: ReLU(sum_k alpha_k A_k). For a classifier the score is the class's output; for
segmentation (Seg-Grad-CAM, Vinogradova, Dibrov & Myers, AAAI 2020) it is the sum of the
class's output over a region: the predicted one, or a given mask.

The gradient comes from TensorFlow's ``GradientTape``: Grad-CAM runs on the TensorFlow backend
(the JAX and PyTorch backends say they are not supported yet). ``default_layer``
picks the layer for any registered network: the last layer before the head whose output is a
spatial feature map (for classifiers the last one before global pooling, for segmentation
networks the last decoder features).
"""

from __future__ import annotations

import cv2
import keras
import numpy as np

__all__ = ["default_layer", "grad_cam", "cam_overlay", "class_targets"]


def _spatial(layer):
    shape = getattr(layer, "output", None)
    shape = getattr(shape, "shape", None)
    return shape is not None and len(shape) == 4


def default_layer(model) -> str:
    """The name of the layer Grad-CAM explains by default: the last layer with a 4-D output
    (batch, H, W, C) that is not part of the head (``head*``) nor the output itself (and, for
    segmentation, has more channels than the output). Raises ``ValueError`` when there is
    none."""
    # A segmentation output's own channels (its logits) are not features to explain.
    segmentation = len(model.outputs[-1].shape) == 4
    out_channels = model.outputs[-1].shape[-1] if segmentation else 0
    outputs = {id(t) for t in model.outputs}
    candidates = [layer for layer in model.layers
                  if _spatial(layer) and not layer.name.startswith("head")
                  and id(layer.output) not in outputs and layer.output.shape[-1] > out_channels
                  and not isinstance(layer, keras.layers.InputLayer)]
    if not candidates:
        raise ValueError(f"model {model.name!r} has no spatial feature layer to explain; "
                         f"give one by name (--layer)")
    return candidates[-1].name


def _feature_model(model, layer_name):
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        nested = [sub.name for sub in model.layers if hasattr(sub, "layers")
                  and any(inner.name == layer_name for inner in sub.layers)]
        where = (f"; it is inside the nested model {nested[0]!r}: choose a layer of the "
                 f"outer model" if nested else "")
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r}{where}") from None
    if not _spatial(layer):
        raise ValueError(f"layer {layer_name!r} has output shape {layer.output.shape}; "
                         f"Grad-CAM needs a spatial feature map (batch, H, W, C)")
    return keras.Model(model.inputs, [layer.output, model.outputs[-1]])


def _score(output, target, region):
    if region is None:  # classification: the class's output
        return keras.ops.sum(output[:, target])
    return keras.ops.sum(output[..., target] * region)


def _gradients(features, x, target, region):
    """``(A, dscore/dA)`` as NumPy, from the backend's automatic differentiation."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(f"Grad-CAM runs on the TensorFlow backend (KERAS_BACKEND=tensorflow), "
                         f"not {backend!r}")
    from kerasmed.evaluation.tf_gradients import feature_gradients

    return feature_gradients(features, x, lambda out: _score(out, target, region))


def grad_cam(model, x: np.ndarray, target: int = 0, region=None, layer: str | None = None):
    """Grad-CAM map of one prepared input ``x`` (``(H, W, C)``, as the network sees it).

    ``target`` is the class (the output channel); ``region`` (``(H_out, W_out)``, 0/1) makes it
    Seg-Grad-CAM over that region of a segmentation output (``None`` for classifiers).
    ``layer`` defaults to ``default_layer(model)``. Returns ``(cam, layer_name)``: ``cam`` is
    float32 ``(H, W)`` in [0, 1] at the input's size (0 everywhere when nothing contributes).
    """
    layer = layer or default_layer(model)
    features = _feature_model(model, layer)
    batch = keras.ops.convert_to_tensor(x[None].astype(np.float32))
    reg = None if region is None else keras.ops.convert_to_tensor(
        np.asarray(region, np.float32)[None])
    maps, grads = _gradients(features, batch, int(target), reg)
    alpha = grads[0].mean(axis=(0, 1))
    cam = np.maximum((maps[0] * alpha).sum(axis=-1), 0)
    cam = cv2.resize(cam.astype(np.float32), (x.shape[1], x.shape[0]),
                     interpolation=cv2.INTER_LINEAR)
    top = float(cam.max())
    return (cam / top if top > 0 else np.zeros_like(cam)).astype(np.float32), layer


def cam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB panel: the image beside the image with the heatmap (jet) blended over it."""
    from kerasmed.data.normalize import normalize_image

    rgb = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image, 3, axis=-1)
    rgb = (normalize_image(rgb, "minmax") * 255).astype(np.uint8)
    heat = cv2.applyColorMap((np.clip(cam, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    blended = (rgb * (1 - alpha) + heat * alpha).astype(np.uint8)
    return np.concatenate([rgb, blended], axis=1)


def class_targets(spec, names, count: int, classifier: bool) -> list[int]:
    """The output channels ``--classes`` names: comma-separated class names (of the run) or
    indices in ``0..count-1``; by default every class of a classifier, the foreground of a
    segmentation network. Raises ``ValueError`` naming the option and the bad entry."""
    if not spec:
        return list(range(count)) if classifier else [0 if count == 1 else 1]
    targets = []
    for entry in (e.strip() for e in spec.split(",")):
        if names and entry in names:
            targets.append(names.index(entry))
            continue
        try:
            index = int(entry)
        except ValueError:
            known = f"; its classes: {', '.join(names)}" if names else ""
            raise ValueError(f"--classes: {entry!r} is neither a class name of this run nor an "
                             f"index{known}") from None
        if not 0 <= index < count:
            raise ValueError(f"--classes: {index} is not an output of this network, which has "
                             f"{count} channel(s) (0-{count - 1})")
        targets.append(index)
    return targets
