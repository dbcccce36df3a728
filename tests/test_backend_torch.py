"""The PyTorch backend: every registered network builds, trains a step with kerasmed's losses
and metrics, and reloads from .keras with identical predictions; the loaders feed ``fit``; the
auxiliary-loss weight changes the loss. One subprocess (KERAS_BACKEND=torch), started as soon as
collection selects this module so that it runs beside the rest of the session."""

import _jax_backend
import pytest

from kerasmed.models import get_spec, list_models

CODE = """
    import numpy as np, keras, tempfile, os
    assert keras.backend.backend() == "torch"
    from kerasmed.models import build, list_models
    from kerasmed import losses, metrics
    from kerasmed.training.aux_weight import auxiliary_losses, set_auxiliary_weight

    tmp = tempfile.mkdtemp()
    small = dict(input_shape=(32, 32, 3), filters=4)
    cases = {
        "unet": dict(small, depth=2), "attention_unet": dict(small, depth=2),
        "r2unet": dict(small, depth=2), "attention_r2unet": dict(small, depth=2),
        "unet_parts": dict(small, depth=2), "multiresunet": small, "drrmsan": small,
        "kidney_segnet": small, "micronet": dict(variant=252, width=1 / 32),
        "residual_attention_network": dict(input_shape=(32, 32, 1), variant="oct_small",
                                           classes=4),
        "unet_plus_plus": dict(small, depth=2, deep_supervision=True),
        "unet_3plus": dict(small, depth=2), "u2net": dict(small, variant="small"),
        "vnet_2d": dict(small, depth=2), "resunet_a": dict(small, depth=3),
        "transunet": dict(small, encoder="cnn", hidden_size=16, num_layers=1, num_heads=2,
                          mlp_dim=32, decoder_filters=(16, 8, 8, 4), decoder_conv_filters=16),
        "swin_unet": dict(small, filters=8, depth=2, head_dim=4, window_size=4),
        "planned_unet": dict(input_shape=(32, 32, 3), widths=(4, 8, 16, 16),
                             deep_supervision=True),
    }
    for family in ("backbone_unet", "fpn", "linknet", "pspnet"):
        size = 96 if family == "pspnet" else 64
        cases[family] = dict(backbone_name="mobilenetv2", input_shape=(size, size, 3),
                             encoder_weights=None)
    for family in ("backbone_unet_plus_plus", "deeplabv3plus"):
        cases[family] = dict(backbone_name="mobilenetv3small", input_shape=(64, 64, 3),
                             encoder_weights=None)
    assert sorted(cases) == list_models(), sorted(set(list_models()) ^ set(cases))
    rng = np.random.default_rng(0)
    for name, params in cases.items():
        model = build(name, **params)
        x = rng.random((2, *model.inputs[0].shape[1:]), dtype=np.float32)
        if name == "residual_attention_network":
            y = np.array([0, 3])
            model.compile("adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        elif name == "micronet":
            y = [np.eye(2, dtype="float32")[rng.integers(0, 2, (2, 252, 252))]] * 4
            model.compile("adam", loss=auxiliary_losses(model, {"name": "weighted_crossentropy",
                                                                "class_weights": [1.0, 2.0]}))
        else:
            ys = [(rng.random((2, *o.shape[1:])) > 0.5).astype("float32") for o in model.outputs]
            y = ys if len(ys) > 1 else ys[0]
            model.compile("adam", loss=losses.get("bce_dice"), metrics=[metrics.get("dice")]
                          if len(ys) == 1 else None)
        before = [w.copy() for w in model.get_weights()]
        logs = model.train_on_batch(x, y, return_dict=True)
        assert all(np.isfinite(v) for v in logs.values()), (name, logs)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), name
        path = os.path.join(tmp, name + ".keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        a, b = model.predict(x, verbose=0), restored.predict(x, verbose=0)
        for p, q in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            np.testing.assert_allclose(p, q, atol=1e-6, err_msg=name)
        print(name, "ok", flush=True)

    # The 1/epoch auxiliary weight really changes the loss on torch.
    model = build("micronet", variant=252, width=1 / 32)
    model.compile(keras.optimizers.SGD(0.0), loss=auxiliary_losses(model, "mse"))
    mx = rng.random((1, 252, 252, 3), dtype=np.float32)
    my = [np.eye(2, dtype="float32")[rng.integers(0, 2, (1, 252, 252))]] * 4
    full = model.evaluate(mx, my, verbose=0, return_dict=True)
    set_auxiliary_weight(model, 0.25)
    quarter = model.evaluate(mx, my, verbose=0, return_dict=True)
    assert abs(quarter["aux1_loss"] - 0.25 * full["aux1_loss"]) < 1e-5, (full, quarter)
    assert abs(quarter["main_loss"] - full["main_loss"]) < 1e-6, (full, quarter)
    print("auxiliary weight ok", flush=True)

    # kerasmed's PyDataset feeds fit on torch.
    from kerasmed.data.dataset import SegmentationDataset
    from kerasmed.data.readers import read_folder_pair
    from kerasmed.data.synthetic import generate_polyp_dataset
    root = generate_polyp_dataset(os.path.join(tmp, "polyps"), n_images=8, height=40, width=48)
    data = SegmentationDataset(read_folder_pair(root), 4, (32, 32), shuffle=True,
                               augment=[{"op": "flip_left_right", "probability": 0.5}])
    model = build("unet", input_shape=(32, 32, 3), filters=4, depth=2)
    model.compile("adam", loss=losses.get("bce_dice"), metrics=[metrics.get("iou")])
    history = model.fit(data, epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["iou"]).all()
    print("all ok")
"""


_PROCESS = []


def start_early():
    """Called by conftest.py once collection selects this module: the subprocess (about two
    minutes of CPU) then runs beside the whole session instead of after it."""
    if not _PROCESS:
        _PROCESS.append(_jax_backend.start(CODE, backend="torch"))


@pytest.fixture(scope="module")
def torch_run():
    start_early()
    yield _PROCESS[0]
    _jax_backend.stop(_PROCESS[0])


def _kerasmed_models():
    # Tests may register models of their own in this process; the subprocess has only these.
    return [n for n in list_models() if get_spec(n).builder.__module__.startswith("kerasmed.")]


def test_every_network_trains_saves_and_reloads_on_torch(torch_run):
    lines = _jax_backend.finish(torch_run).splitlines()
    assert lines[-1] == "all ok", lines
    assert sorted(line.split()[0] for line in lines if line.endswith(" ok")) == sorted(
        _kerasmed_models() + ["auxiliary", "all"])
