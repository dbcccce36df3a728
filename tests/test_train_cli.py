import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import train_main
from kerasmed.data.readers import read_folder_pair
from kerasmed.data.dataset import SegmentationDataset
from kerasmed.runfiles import create_run_dir


def test_run_directory_contents(finished_run):
    run_dir, path, _, _ = finished_run
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "config.source.json", "split.json", "history.csv", "plots",
            "best.keras", "last.keras", "summary.json"} <= names
    assert (run_dir / "config.source.json").read_text() == path.read_text()
    assert json.loads((run_dir / "config.json").read_text())["training"]["precision"] == "float32"
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["train"]) == 12 and len(split["val"]) == 4
    assert not set(split["train"]) & set(split["val"])


def test_history_has_one_row_per_epoch_and_every_column(finished_run):
    history = pd.read_csv(finished_run[0] / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert list(history.columns) == ["epoch", "loss", "dice", "iou", "val_loss", "val_dice",
                                     "val_iou", "learning_rate", "epoch_time_s"]
    assert np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    assert (history["learning_rate"] == 1e-3).all() and (history["epoch_time_s"] > 0).all()
    assert history["val_dice"].between(0, 1).all()


def test_plots_for_each_quantity(finished_run):
    plots = finished_run[0] / "plots"
    expected = {"loss", "dice", "iou", "learning_rate", "epoch_time_s"}
    assert {p.stem for p in plots.glob("*.png")} == expected
    for p in plots.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_checkpoints_reload_and_predict_like_the_summary_says(finished_run):
    run_dir, _, _, config = finished_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    history = pd.read_csv(run_dir / "history.csv")
    best_epoch = int(history["val_dice"].idxmax()) + 1
    assert summary["best"]["epoch"] == best_epoch
    assert summary["best"]["value"] == pytest.approx(history["val_dice"].max())
    assert summary["final"]["epoch"] == 3
    best = keras.saving.load_model(run_dir / "best.keras")
    last = keras.saving.load_model(run_dir / "last.keras")
    assert best.count_params() == summary["parameters"] == last.count_params()
    # Re-evaluating the best checkpoint on the recorded validation split gives its val_dice.
    split = json.loads((run_dir / "split.json").read_text())
    samples = [s for s in read_folder_pair(config["data"]["root"]) if str(s.image) in split["val"]]
    val = SegmentationDataset(samples, batch_size=4, image_size=(32, 32))
    scores = best.evaluate(val, verbose=0, return_dict=True)
    assert scores["dice"] == pytest.approx(summary["best"]["value"], abs=1e-4)


def test_a_second_run_never_overwrites_the_first(finished_run):
    run_dir, path, out, _ = finished_run
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert train_main([str(path), "--output", str(out), "--set", "training.epochs=1"]) == 0
    runs = sorted(out.iterdir())
    assert len(runs) == 2
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    other = next(r for r in runs if r != run_dir)
    assert len(pd.read_csv(other / "history.csv")) == 1


def test_run_dirs_are_unique_even_in_the_same_second(tmp_path):
    dirs = {create_run_dir(tmp_path, "x") for _ in range(5)}
    assert len(dirs) == 5 and all(d.is_dir() for d in dirs)


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "kerasmed.cli", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--output" in result.stdout
    # The entry point pip installs (the README's set-up installs the package before testing).
    script = shutil.which("kerasmed-train")
    assert script, "kerasmed-train is not on PATH: install the package (pip install -e .)"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "experiment file" in result.stdout
