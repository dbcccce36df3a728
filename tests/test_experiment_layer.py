"""The experiment layer: inference sees images exactly as training did, every choice is imported
from the module that owns it, and the layers below import nothing from the layers above."""

import ast
import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import eval_main, predict_main, train_main

PACKAGE = Path(__file__).resolve().parent.parent / "kerasmed"


def _train(tmp_path, fit, image_size, height, width):
    """A tiny U-Net trained one epoch on synthetic ``height x width`` polyps with ``data.fit``."""
    config = {
        "name": f"tiny_{fit}", "seed": 1,
        "model": {"name": "unet", "params": {"filters": 4, "depth": 2}},
        "data": {"dataset": "synthetic_polyps", "root": str(tmp_path / "synthetic"),
                 "synthetic": {"n_images": 8, "height": height, "width": width, "seed": 2},
                 "image_size": list(image_size), "fit": fit, "val_fraction": 0.25},
        "training": {"epochs": 1, "batch_size": 2, "verbose": 0},
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(config))
    assert train_main([str(path), "--output", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def _by_hand(model, image, fit):
    """The prediction of an RGB uint8 image, written out with OpenCV alone: how kerasmed's loader
    shows images to the network for ``fit`` (then / 255), and back to the image's size."""
    th, tw = model.inputs[0].shape[1:3]
    h, w = image.shape[:2]
    if fit == "resize":
        shrink = th <= h and tw <= w
        x = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if shrink
                       else cv2.INTER_LINEAR)
        top, left, nh, nw = 0, 0, th, tw
    else:  # letterbox: scale to fit, centre, pad with 0
        scale = min(th / h, tw / w)
        nh, nw = round(h * scale), round(w * scale)
        top, left = (th - nh) // 2, (tw - nw) // 2
        x = np.zeros((th, tw, 3), np.uint8)
        x[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh),
                                                     interpolation=cv2.INTER_AREA)
    prob = model.predict(x[None].astype(np.float32) / 255, verbose=0)[0, ..., 0]
    return cv2.resize(prob[top:top + nh, left:left + nw], (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("fit, image_size, height, width", [
    ("pad", (32, 48), 48, 96),        # non-square images letterboxed into a non-square input
    ("resize", (32, 48), 24, 36),     # images enlarged: bilinear, as the loader enlarges
], ids=["pad", "resize-enlarging"])
def test_evaluation_and_prediction_see_images_as_training_did(tmp_path, fit, image_size, height,
                                                              width):
    run_dir = _train(tmp_path, fit, image_size, height, width)
    model = keras.saving.load_model(run_dir / "best.keras")
    val = json.loads((run_dir / "split.json").read_text())["val"]
    images = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in val]
    probs = [_by_hand(model, image, fit) for image in images]
    # A threshold inside the predictions' range, so that the masks depend on the geometry.
    threshold = float(np.median(probs[0]))

    assert eval_main([str(run_dir), "--threshold", str(threshold), "--overlays", "1"]) == 0
    (eval_dir,) = run_dir.glob("eval_*")
    table = pd.read_csv(eval_dir / "per_image.csv")
    for path, prob in zip(val, probs):
        mask_path = Path(path).parent.parent / "masks" / f"{Path(path).stem}.png"
        truth = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
        pred = prob > threshold
        total = pred.sum() + truth.sum()
        dice = 2 * (pred & truth).sum() / total if total else 1.0
        row = table[table["image"] == path].iloc[0]
        assert row["dice"] == pytest.approx(dice, abs=1e-9)
    summary = json.loads((eval_dir / "summary.json").read_text())
    inference = summary["inference"]
    assert inference["fit"] == fit and inference["mode"] == fit
    assert inference["image_size"] == list(image_size)
    assert inference["normalization"] == "auto" and inference["channels"] == 3

    out = tmp_path / "predicted"
    assert predict_main([str(run_dir), *val, "--output", str(out), "--probabilities"]) == 0
    for path, prob in zip(val, probs):
        written = cv2.imread(str(out / f"{Path(path).stem}_prob.png"), cv2.IMREAD_UNCHANGED)
        assert written.shape == (height, width)
        np.testing.assert_allclose(written / 65535, np.clip(prob, 0, 1), atol=2e-5)


# --------------------------------------------------------------------- one place for each fact

def test_schema_choices_come_from_the_modules_that_own_them():
    from kerasmed.data.dataset import TRAINING_MASK_MODES
    from kerasmed.data.readers import READERS
    from kerasmed.data.spatial import FIT_MODES
    from kerasmed.data.synthetic import SYNTHETIC_DATASETS
    from kerasmed.evaluation.objects import Postprocess, postprocess_defaults
    from kerasmed.experiment.schema import SCHEMA
    from kerasmed.training.distribution import DISTRIBUTIONS
    from kerasmed.training.trainer import LOOPS

    data, training = SCHEMA["data"], SCHEMA["training"]
    assert set(data["dataset"].choices) == set(SYNTHETIC_DATASETS) | set(READERS)
    assert data["fit"].choices == FIT_MODES
    assert data["mask_mode"].choices == TRAINING_MASK_MODES
    assert training["loop"].choices == LOOPS
    assert training["distribution"].choices == DISTRIBUTIONS
    from kerasmed.evaluation.cleaning import MaskCleaning, mask_cleaning_defaults

    section = {k: f.default for k, f in SCHEMA["postprocess"].items()
               if k not in ("instances", "select", "mask")}
    assert section == postprocess_defaults() == {
        k: v for k, v in vars(Postprocess()).items() if k != "source"}
    cleaning = {k: f.default for k, f in SCHEMA["postprocess"]["mask"].items()}
    assert cleaning == mask_cleaning_defaults() == MaskCleaning().record()


def test_registry_defaults_are_the_signature_plus_the_papers_differences():
    import inspect

    from kerasmed.models import default_config, get_spec, list_models
    from kerasmed.models.registry import register_model

    for name in list_models():
        spec = get_spec(name)
        signature = {p.name: p.default for p in inspect.signature(spec.builder).parameters.values()
                     if p.default is not p.empty and p.name != "name"}
        assert default_config(name) == {**signature, **spec.paper}, name
        for key, value in spec.paper.items():  # explicit entries only where the paper differs
            assert key in spec.parameters() and signature.get(key, object()) != value, (name, key)
    assert default_config("micronet")["variant"] == 508  # the builder infers it from the size

    def builder(input_shape=(8, 8, 1), filters=4):
        return None

    with pytest.raises(ValueError, match="repeats the builder's default"):
        register_model("kerasmed_test_repeat", defaults={"filters": 4})(builder)
    with pytest.raises(ValueError, match="is not a parameter"):
        register_model("kerasmed_test_unknown", defaults={"depth": 4})(builder)


def test_did_you_mean_is_worded_once():
    from kerasmed.names import did_you_mean, unknown_name_message

    assert did_you_mean("resise", ("resize", "pad")) == " Did you mean 'resize'?"
    assert did_you_mean("zzz", ("resize", "pad")) == ""
    assert unknown_name_message("model", "unett", ["unet", "fpn"]) == \
        "unknown model 'unett'. Did you mean 'unet'? Valid names: fpn, unet"
    sources = [p for p in PACKAGE.rglob("*.py") if p.name != "names.py"]
    assert not [str(p) for p in sources if "get_close_matches" in p.read_text()]


# ------------------------------------------------------------------------------- the layers

def _kerasmed_imports(path):
    """Every kerasmed module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kerasmed")}
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("kerasmed"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.startswith("kerasmed.") and " " not in node.value:
            found.add(node.value)  # a module reached by its name (importlib)
    return found


ABOVE = {  # each layer and the layers it must not import
    "models": ("training", "evaluation", "experiment", "planning", "api", "cli", "config"),
    "data": ("training", "evaluation", "experiment", "planning", "api", "cli", "config"),
    "losses": ("models", "training", "evaluation", "experiment", "planning", "api", "cli",
               "config"),
    "metrics": ("models", "training", "evaluation", "experiment", "planning", "api", "cli",
               "config"),
    "names": ("models", "data", "losses", "metrics", "training", "evaluation", "experiment",
              "planning"),
    "runfiles": ("models", "data", "losses", "metrics", "training", "evaluation", "experiment",
                 "planning"),
    "signals": ("models", "data", "losses", "metrics", "training", "evaluation", "experiment",
                "planning", "runfiles", "names"),
    "keras_private": ("models", "data", "losses", "metrics", "training", "evaluation",
                      "experiment", "planning"),
    "evaluation": ("training", "experiment", "planning", "api", "cli", "config"),
    "training": ("experiment", "planning", "api", "cli", "config"),
    "experiment": ("planning", "api", "cli"),
    "planning": ("api", "cli"),
    "api": ("cli",),
}


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_dependencies_flow_one_way(layer):
    paths = [PACKAGE / f"{layer}.py"] if (PACKAGE / f"{layer}.py").exists() else \
        sorted((PACKAGE / layer).rglob("*.py"))
    assert paths
    bad = {}
    for path in paths:
        wrong = sorted(m for m in _kerasmed_imports(path)
                       if any(m == f"kerasmed.{up}" or m.startswith(f"kerasmed.{up}.")
                              for up in ABOVE[layer]))
        if wrong:
            bad[str(path.relative_to(PACKAGE))] = wrong
    assert not bad
