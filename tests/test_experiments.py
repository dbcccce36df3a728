"""Every experiment file in experiments/ validates; the instance networks train from their files
and evaluate objects (the other networks: test_experiments_train_*.py)."""

import json

import pytest

from _experiment_files import EXPERIMENTS, _pointed_at, _tiny_overrides, cvc  # noqa: F401
from kerasmed.cli import eval_main, train_main
from kerasmed.experiment.files import load_config
from kerasmed.models import get_spec


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_file_is_valid(path, cvc, tmp_path):  # noqa: F811
    config = load_config(_pointed_at(path, cvc, tmp_path))
    assert get_spec(config["model"]["name"])
    assert config["description"], "every experiment says what it is"


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
