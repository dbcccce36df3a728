"""Every experiment file in experiments/ validates, and each network trains from its file."""

import json
from pathlib import Path

import pytest

from kerasmed.cli import train_main
from kerasmed.experiment.schema import load_config
from kerasmed.cli import eval_main
from kerasmed.data.lookalike import (make_cvc_clinicdb, make_glas, make_monuseg, make_nuclei,
                                     make_oct2017)
from kerasmed.models import get_spec

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.json"))


@pytest.fixture(scope="module")
def cvc(tmp_path_factory):
    """A CVC-ClinicDB look-alike: the first two video sequences, 50 frames at 48x64."""
    root = tmp_path_factory.mktemp("cvc")
    make_cvc_clinicdb(root, frames=range(1, 51), height=48, width=64)
    return root


def _pointed_at(path, cvc, tmp_path):
    """The experiment with its dataset root moved to the look-alike (or a temp folder)."""
    config = json.loads(path.read_text())
    if config["data"]["dataset"] == "cvc_clinicdb":
        config["data"]["root"] = str(cvc)
    elif config["data"]["dataset"] == "oct2017":
        config["data"]["root"] = str(make_oct2017(tmp_path / "oct", per_class=2))
    elif config["data"]["dataset"] == "synthetic_polyps":
        config["data"]["root"] = str(tmp_path / "synthetic")
    elif config["data"]["dataset"] == "glas":
        config["data"]["root"] = str(make_glas(tmp_path / "glas", height=60, width=90))
    elif config["data"]["dataset"] == "monuseg":
        config["data"]["root"] = str(make_monuseg(tmp_path / "monuseg", train=6, test=1,
                                                  height=40, width=40))
    elif config["data"]["dataset"] == "folder":  # nuclei: images/ + masks/ instance labels
        config["data"]["root"] = str(make_nuclei(tmp_path / "nuclei", n=4, height=40, width=40))
    copy = tmp_path / path.name
    copy.write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_file_is_valid(path, cvc, tmp_path):
    config = load_config(_pointed_at(path, cvc, tmp_path))
    assert get_spec(config["model"]["name"])
    assert config["description"], "every experiment says what it is"


def _tiny_overrides(config):
    """Shrink an experiment so it trains in seconds on a CPU: few filters, 32x32, one epoch."""
    spec = get_spec(config["model"]["name"])
    # No XLA: compiling a large graph once costs a CPU more than the step it speeds up.
    overrides = ["training.epochs=1", "training.batch_size=2", 'training.precision="float32"',
                 "data.val_fraction=0.5", "training.jit_compile=false"]
    if spec.name == "micronet":  # valid convolutions: Micro-Net takes exactly 252 or 508
        overrides += ["data.image_size=[252,252]", "model.params.variant=252",
                      "model.params.width=0.03125"]
    else:
        overrides.append("data.image_size=[32,32]")
    for key, value in (("filters", "4"), ("depth", "2"), ("encoder_weights", "null")):
        if key in spec.parameters():  # no ImageNet download in tests
            overrides.append(f"model.params.{key}={value}")
    # Networks whose smallest useful form is still large: a tiny form of each.
    overrides += [f"model.params.{key}={value}" for key, value in _TINY.get(spec.name, ())]
    return overrides


_TINY = {
    "transunet": (("encoder", '"cnn"'), ("hidden_size", "16"), ("num_layers", "1"),
                  ("num_heads", "2"), ("mlp_dim", "32"), ("decoder_filters", "[16,8,8,4]"),
                  ("decoder_conv_filters", "16")),
    "swin_unet": (("blocks", "1"), ("drop_path_rate", "0")),
    "backbone_unet_plus_plus": (("backbone_name", '"mobilenetv3small"'),),
    "deeplabv3plus": (("backbone_name", '"mobilenetv3small"'),),
}


@pytest.mark.parametrize("path", [p for p in EXPERIMENTS if p.stem.startswith("cvc_")
                                  and p.stem != "cvc_resnet50" or p.stem == "oct_ran_small"],
                         ids=lambda p: p.stem)
def test_each_network_trains_from_its_experiment_file(path, cvc, tmp_path):
    copy = _pointed_at(path, cvc, tmp_path)
    overrides = _tiny_overrides(json.loads(copy.read_text()))
    args = [str(copy), "--output", str(tmp_path / "runs")]
    for o in overrides:
        args += ["--set", o]
    assert train_main(args) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["best"] is not None


@pytest.mark.parametrize("name", ["glas_micronet508", "monuseg_kidney_segnet"])
def test_instance_networks_train_from_their_files_and_evaluate_objects(name, tmp_path, capsys):
    """Micro-Net on GlaS (two-class softmax targets, auxiliary heads) and Kidney-SegNet on
    nuclei (distance-map targets) train from their experiment files, and kerasmed-eval scores
    their objects (AJI, object F1, object Dice) on the validation split."""
    path = next(p for p in EXPERIMENTS if p.stem == name)
    copy = _pointed_at(path, None, tmp_path)
    args = [str(copy), "--output", str(tmp_path / "runs")]
    for o in _tiny_overrides(json.loads(copy.read_text())):
        args += ["--set", o]
    assert train_main(args) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    row = summary["final"]
    if name == "glas_micronet508":
        assert {"main_loss", "aux1_loss", "val_main_dice"} <= set(row)
    else:
        assert {"loss", "mae", "val_mae"} <= set(row)
    assert eval_main([str(run_dir), "--overlays", "1"]) == 0
    (eval_dir,) = run_dir.glob("eval_*")
    result = json.loads((eval_dir / "summary.json").read_text())
    assert result["postprocess"]["source"] == ("distance" if "kidney_segnet" in name
                                               else "probability")
    for key in ("aji", "object_f1", "object_dice"):
        assert 0.0 <= result[key]["mean"] <= 1.0 and result[key]["n"] == summary["val_samples"]
    assert "pooled object F1" in capsys.readouterr().out
