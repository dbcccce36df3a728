"""Issue 30: the Python API returns what the commands write (the commands wrap it)."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest

import kerasmed
from kerasmed.cli import compare_main, eval_main, explain_main, predict_main


@pytest.fixture(scope="module")
def run(finished_run):
    return kerasmed.load_run(finished_run[0])


def _val_images(run):
    return [s["image"] if isinstance(s, dict) else s
            for s in json.loads((run.path / "split.json").read_text())["val"]]


def test_a_run_object_holds_the_files_of_its_folder(run):
    assert run.summary["status"] == "completed" and not run.is_kfold and run.folds == []
    assert list(run.history["epoch"]) == [1, 2, 3]
    assert run.config["model"]["name"] == "unet"
    figure = run.plot()
    titles = {ax.get_title() for ax in figure.axes}
    assert {"loss", "dice", "iou"} <= titles
    loss = next(ax for ax in figure.axes if ax.get_title() == "loss")
    train, val = loss.get_lines()[:2]
    assert list(train.get_ydata()) == pytest.approx(list(run.history["loss"]))
    assert list(val.get_ydata()) == pytest.approx(list(run.history["val_loss"]))
    with pytest.raises(FileNotFoundError, match="not a kerasmed run folder"):
        kerasmed.load_run(run.path / "plots")


def test_evaluate_returns_what_kerasmed_eval_writes(run, tmp_path):
    evaluation = kerasmed.evaluate(run, output=tmp_path / "api", overlays=1)
    assert eval_main([str(run.path), "--output", str(tmp_path / "cli"), "--overlays", "1"]) == 0
    (cli,) = (tmp_path / "cli").iterdir()
    pd.testing.assert_frame_equal(evaluation.per_image, pd.read_csv(cli / "per_image.csv"))
    assert evaluation.summary["dice"] == json.loads((cli / "summary.json").read_text())["dice"]
    panels = evaluation.show()
    assert len([ax for ax in panels.axes if ax.images]) == 2  # the best and the worst case


def test_predict_returns_the_masks_kerasmed_predict_writes(run, tmp_path):
    images = _val_images(run)[:2]
    predictions = kerasmed.predict(run, images, threshold=0.5)
    assert predict_main([str(run.path), *images, "--output", str(tmp_path / "m")]) == 0
    for p in predictions:
        written = cv2.imread(str(tmp_path / "m" / f"{p.image.stem}.png"), cv2.IMREAD_GRAYSCALE)
        h, w = cv2.imread(str(p.image)).shape[:2]
        assert p.mask.shape == written.shape == (h, w)  # the image's own size
        assert p.probabilities.shape == (h, w, 1)
        np.testing.assert_array_equal(p.mask * 255, written)
    # On a folder with an unreadable image: raise, or skip it and say so.
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(open(images[0], "rb").read())
    (folder / "b.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="b.png"):
        kerasmed.predict(run, folder)
    skipped = []
    assert [p.image.name for p in kerasmed.predict(run, folder, on_error="skip",
                                                   skipped=skipped)] == ["a.png"]
    assert skipped[0][0].name == "b.png"


def test_explain_returns_the_heatmaps_kerasmed_explain_draws(run, tmp_path):
    images = _val_images(run)[:2]
    heatmaps = kerasmed.explain(run, images)
    assert explain_main([str(run.path), *images, "--output", str(tmp_path / "x")]) == 0
    assert len(heatmaps) == len(list((tmp_path / "x").iterdir())) == 2
    for h in heatmaps:
        assert h.heatmap.shape == h.image.shape[:2] and 0 <= h.heatmap.min() <= 1
        written = cv2.imread(str(tmp_path / "x" / f"{h.image_path.stem}_seggradcam.png"))
        np.testing.assert_array_equal(cv2.cvtColor(written, cv2.COLOR_BGR2RGB), h.overlay())


def test_compare_returns_the_table_kerasmed_compare_writes(run, tmp_path):
    a = kerasmed.evaluate(run, output=tmp_path / "a", overlays=0)
    b = kerasmed.evaluate(run, output=tmp_path / "b", overlays=0, threshold=0.9)
    comparison = kerasmed.compare([a, b], names=["t05", "t09"], bootstrap=200,
                                  output=tmp_path / "api")
    assert compare_main([str(a.path), str(b.path), "--names", "t05,t09", "--bootstrap", "200",
                         "--output", str(tmp_path / "cli")]) == 0
    (cli,) = (tmp_path / "cli").iterdir()
    pd.testing.assert_frame_equal(comparison.table.reset_index(drop=True),
                                  pd.read_csv(cli / "comparison.csv"), check_dtype=False)
    with pytest.raises(ValueError, match="given twice"):
        kerasmed.compare([a, a.path])


def test_train_takes_a_dict_and_overrides(tiny_experiment, tmp_path):
    trained = kerasmed.train(tiny_experiment, output=tmp_path / "runs",
                             overrides={"training.epochs": 1})
    assert trained.summary["status"] == "completed" and len(trained.history) == 1
    assert trained.checkpoint.exists()
    with pytest.raises(kerasmed.ConfigError, match="training.epochs"):
        kerasmed.train(tiny_experiment, output=tmp_path / "runs",
                       overrides=["training.epochs=0"])


def test_tune_needs_an_experiment_or_a_study_to_resume():
    with pytest.raises(ValueError, match="either an experiment file or --resume"):
        kerasmed.tune()


def test_export_refuses_an_unknown_format_before_loading_anything(tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(ValueError, match=r"format must be one of \['onnx', 'savedmodel'\], "
                                         r"got 'tflite'"):
        kerasmed.export(missing, "tflite")
    assert not missing.exists()


def test_no_module_switches_the_matplotlib_backend():
    """``matplotlib.use("Agg")`` in a module would stop a notebook's figures from showing
    (the figures kerasmed writes are drawn on ``matplotlib.figure.Figure`` instead)."""
    from pathlib import Path

    package = Path(kerasmed.__file__).parent
    switching = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if "matplotlib.use(" in p.read_text()]
    assert switching == []


def test_export_returns_the_record_kerasmed_export_writes(run, tmp_path):
    from kerasmed.cli import export_main

    record = kerasmed.export(run, "savedmodel", tmp_path / "api")
    assert export_main([str(run.path), "--format", "savedmodel", "--output",
                        str(tmp_path / "cli")]) == 0
    written = json.loads((tmp_path / "cli.export.json").read_text())
    assert record == json.loads((tmp_path / "api.export.json").read_text())
    assert {k: v for k, v in record.items() if k != "path"} == \
        {k: v for k, v in written.items() if k != "path"}
    assert record["max_abs_diff"] <= record["tolerance"]
