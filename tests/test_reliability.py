"""Issue 26: a run folder is a portable artefact, and bad options or experiment values end in
one line (exit 2) before any work, with nothing left behind."""

import json
import shutil
from pathlib import Path

import pytest

from kerasmed.cli import compare_main, eval_main, export_main, predict_main, train_main


@pytest.fixture
def moved_run(finished_run, tmp_path):
    """The finished run copied alone to a new folder, its training data "moved away": its
    config names a folder dataset at a path that does not exist here."""
    run_dir, _, _, config = finished_run
    copy = tmp_path / "elsewhere" / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval_*", "export"))
    saved = json.loads((copy / "config.json").read_text())
    saved["data"].update(dataset="folder", root=str(tmp_path / "gone"))
    (copy / "config.json").write_text(json.dumps(saved))
    return copy, config["data"]["root"]


def test_a_run_folder_copied_alone_evaluates_predicts_and_exports(moved_run, tmp_path, capsys):
    run, images = moved_run
    assert eval_main([str(run), "--data", images, "--overlays", "1"]) == 0
    (evaluation,) = run.glob("eval_*")

    def refuse(constant):
        raise ValueError(f"bare {constant} in summary.json")
    # Strict JSON (JavaScript's JSON.parse, jq): undefined values are null, never NaN.
    json.loads((evaluation / "summary.json").read_text(), parse_constant=refuse)
    assert predict_main([str(run), f"{images}/images", "--output", str(tmp_path / "m")]) == 0
    assert any((tmp_path / "m").iterdir())
    assert export_main([str(run), "--format", "savedmodel", "--output",
                        str(tmp_path / "exported")]) == 0
    capsys.readouterr()
    # Without --data it says where the images were expected, in one line.
    assert eval_main([str(run)]) == 2
    err = capsys.readouterr().err
    assert "is not here" in err and "--data" in err and "Traceback" not in err


def test_a_resume_still_checks_this_machine(moved_run, capsys):
    run, _ = moved_run
    assert train_main(["--resume", str(run)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_non_finite_learning_rates_a_list_experiment_and_huge_inputs_are_refused(
        write_config, tiny_experiment, tmp_path, capsys):
    out = tmp_path / "runs"
    tiny_experiment["training"]["optimizer"] = {"name": "adam", "learning_rate": float("nan")}
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out)]) == 2
    assert "learning_rate must be a finite number" in capsys.readouterr().err
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert train_main([str(listed), "--set", "training.epochs=1"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err
    tiny_experiment["training"]["optimizer"] = {"name": "adam", "learning_rate": 1e-3}
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out), "--set",
                       "data.image_size=[200000,200000]"]) == 2
    err = capsys.readouterr().err
    assert "data.image_size" in err and "GiB" in err
    assert not out.exists()  # nothing was claimed


@pytest.mark.parametrize("command, args", [
    (predict_main, ["--overlap", "-0.5"]), (predict_main, ["--overlap", "nan"]),
    (predict_main, ["--threshold", "1.5"]), (eval_main, ["--samples", "0"]),
    (export_main, ["--tolerance", "nan"]), (export_main, ["--tolerance", "-1"]),
    (compare_main, ["--bootstrap", "0"]), (compare_main, ["--bootstrap", "-5"]),
])
def test_out_of_range_options_are_refused_before_any_work(command, args, tmp_path, capsys):
    positional = {predict_main: ["run", "image.png", "--output", str(tmp_path / "o")],
                  eval_main: ["run"], export_main: ["run", "--format", "onnx"],
                  compare_main: ["a", "b"]}[command]
    with pytest.raises(SystemExit) as exit_:
        command(positional + args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert args[0] in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_explain_checks_classes_images_and_writes_all_or_nothing(finished_run, tmp_path,
                                                                 capsys):
    from kerasmed.cli import explain_main

    run_dir, _, _, config = finished_run
    images = sorted((Path(config["data"]["root"]) / "images").iterdir())[:3]
    out = tmp_path / "cams"
    assert explain_main([str(run_dir), str(images[0]), "--output", str(out),
                         "--classes", "3"]) == 2
    assert "--classes: 3 is not an output" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert explain_main([str(run_dir), str(empty), "--output", str(out)]) == 2
    assert "a folder with no images" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:200])  # truncated
    assert explain_main([str(run_dir), *map(str, images[:2]), str(broken), "--output",
                         str(out)]) == 2
    assert "nothing was written" in capsys.readouterr().err and not out.exists()


def test_predict_on_an_empty_folder_is_an_error_not_zero_masks(finished_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert predict_main([str(finished_run[0]), str(empty), "--output",
                         str(tmp_path / "o")]) == 2
    assert "a folder with no images" in capsys.readouterr().err


def test_compare_names_the_bad_cell_and_a_repeated_evaluation(tmp_path, capsys):
    for name, value in (("a", "0.5"), ("b", "oops")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "per_image.csv").write_text(f"image,dice\nx.png,0.4\ny.png,{value}\n")
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "b"), "--output",
                         str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "per_image.csv: column 'dice', row 3 (image y.png): 'oops' is not a number" in err
    assert compare_main([str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    assert "is given twice" in capsys.readouterr().err


def test_experiment_files_that_are_not_utf8_or_point_at_a_file_are_named(
        write_config, tiny_experiment, tmp_path, capsys):
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps({"name": "caf\u00e9"}).replace("\\u00e9", "\u00e9")
                      .encode("latin-1"))
    assert train_main([str(latin)]) == 2
    assert f"{latin}: not UTF-8 text" in capsys.readouterr().err
    tiny_experiment["data"].update(dataset="folder", root=str(latin))
    assert train_main([str(write_config(tiny_experiment))]) == 2
    assert "is a file; give the dataset's folder" in capsys.readouterr().err


def test_a_dataset_whose_masks_are_all_empty_is_warned_about(tmp_path):
    import numpy as np

    from kerasmed.data.dataset import SegmentationDataset
    from kerasmed.data.folders import write_png
    from kerasmed.data.readers import read_dataset
    from kerasmed.names import KerasmedWarning

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(4):
        write_png(tmp_path / "images" / f"{i}.png", np.full((16, 16, 3), 100, np.uint8))
        write_png(tmp_path / "masks" / f"{i}.png", np.zeros((16, 16), np.uint8))
    with pytest.warns(KerasmedWarning, match="every mask of the 4 training sample"):
        SegmentationDataset(read_dataset("folder", tmp_path), 2, (16, 16), shuffle=True)


def test_resume_reconciles_stray_files_and_refuses_damaged_ones(write_config, tiny_experiment,
                                                                tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "runs"
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out)]) == 0
    (run,) = out.iterdir()
    state = json.loads((run / "state.json").read_text())
    state["epochs_completed"] = 1  # as if killed after epoch 1 of 2
    (run / "state.json").write_text(json.dumps(state))
    stray = run / ".last.abc123.keras"  # a kill during a checkpoint save
    stray.write_bytes(b"partial")
    history = (run / "history.csv").read_bytes()
    (run / "history.csv").unlink()
    assert train_main(["--resume", str(run)]) == 2
    assert "history.csv: holds 0 epoch(s) but state.json and last.keras record 1" in \
        capsys.readouterr().err
    (run / "history.csv").write_bytes(history)
    good = (run / "last.keras").read_bytes()
    (run / "last.keras").write_bytes(good[:len(good) // 2])
    assert train_main(["--resume", str(run)]) == 2
    assert "last.keras: the checkpoint cannot be read" in capsys.readouterr().err
    (run / "last.keras").write_bytes(good)
    assert train_main(["--resume", str(run)]) == 0
    assert not stray.exists()
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [1, 2]
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_a_cache_that_cannot_fit_is_refused_with_its_estimate(write_config, tiny_experiment,
                                                              tmp_path, monkeypatch, capsys):
    import numpy as np

    from kerasmed.data import dataset as dataset_module
    from kerasmed.data.dataset import SegmentationDataset
    from kerasmed.data.folders import write_png
    from kerasmed.data.readers import read_dataset

    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(4):
        write_png(tmp_path / "images" / f"{i}.png", np.full((64, 48, 3), 100, np.uint8))
        write_png(tmp_path / "masks" / f"{i}.png", np.full((64, 48), 255, np.uint8))
    samples = read_dataset("folder", tmp_path)
    # 4 samples of 32x32 (resize) with 3 uint8 channels and a uint8 mask: 16 KiB.
    monkeypatch.setattr(dataset_module, "physical_memory_bytes", lambda: 2 * 16 * 1024)
    SegmentationDataset(samples, 2, (32, 32), cache=True)  # exactly half: fits
    SegmentationDataset(samples, 2, (32, 32), cache=False)  # no cache, no check
    with pytest.raises(ValueError, match=r"cache: keeping the 4 decoded samples"):
        SegmentationDataset(samples, 2, (33, 32), cache=True)
    # Windowed fits keep whole images (64x48): three times the 32x32 estimate.
    monkeypatch.setattr(dataset_module, "physical_memory_bytes", lambda: 2 * 3 * 16 * 1024 - 2)
    with pytest.raises(ValueError, match="cache"):
        SegmentationDataset(samples, 2, (32, 32), cache=True, fit="tile")

    # Through kerasmed-train: one line naming data.cache, exit 2, no run folder.
    monkeypatch.setattr(dataset_module, "physical_memory_bytes", lambda: 1024)
    out = tmp_path / "runs"
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out),
                       "--set", "data.cache=true"]) == 2
    err = capsys.readouterr().err
    assert "cache" in err and "GiB" in err and "Traceback" not in err
    assert not out.exists() or not any(out.rglob("config.json"))


def _stop(*args, **kwargs):
    from kerasmed.signals import Terminated

    raise Terminated()


@pytest.mark.parametrize("command", ["predict", "explain", "export"])
def test_inference_commands_stopped_by_sigterm_leave_nothing(finished_run, tmp_path, command,
                                                             monkeypatch, capsys):
    """A scheduler's SIGTERM (raised here as ``Terminated``, what the handler raises) in the
    middle of the work: exit 143, one line, and no output, not even a partial one."""
    import kerasmed.evaluation as evaluation
    import kerasmed.evaluation.explain as explain
    import kerasmed.exporting as export
    from kerasmed.cli import explain_main

    run_dir = finished_run[0]
    images = sorted((finished_run[0].parent.parent / "synthetic" / "images").glob("*.png"))[:3]
    out = tmp_path / "out"
    if command == "predict":
        calls = []
        real = evaluation.predict_image

        def predict_then_stop(*args, **kwargs):  # the third image is stopped mid-way
            calls.append(1)
            return real(*args, **kwargs) if len(calls) < 3 else _stop()
        monkeypatch.setattr(evaluation, "predict_image", predict_then_stop)
        code = predict_main([str(run_dir), *map(str, images), "--output", str(out)])
    elif command == "explain":
        monkeypatch.setattr(explain, "grad_cam", _stop)
        code = explain_main([str(run_dir), *map(str, images), "--output", str(out)])
    else:  # stopped after the converter wrote its files, during the check
        monkeypatch.setattr(export, "exported_predict", _stop)
        code = export_main([str(run_dir), "--format", "savedmodel", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 143
    assert f"kerasmed-{command}: interrupted (SIGTERM)" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_kerasmed_plan_stopped_by_sigterm_writes_no_plan(tmp_path, monkeypatch, capsys):
    import numpy as np

    import kerasmed.planning.planner as planner
    from kerasmed.cli import plan_main
    from kerasmed.data.folders import write_png

    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for i in range(6):
        write_png(tmp_path / "data" / "images" / f"{i}.png",
                  rng.integers(0, 255, (32, 32, 3), np.uint8))
        write_png(tmp_path / "data" / "masks" / f"{i}.png",
                  (rng.random((32, 32)) > 0.7).astype(np.uint8) * 255)
    monkeypatch.setattr(planner, "plan_from_fingerprint", _stop)
    assert plan_main([str(tmp_path / "data"), "--output", str(tmp_path / "plan")]) == 143
    assert "kerasmed-plan: interrupted (SIGTERM)" in capsys.readouterr().err
    assert not (tmp_path / "plan").exists()


def test_errors_name_the_file_the_override_and_the_path(finished_run, write_config,
                                                        tiny_experiment, tmp_path, monkeypatch,
                                                        capsys):
    import errno

    import keras

    # A run whose config.json is damaged: the file is named.
    run = tmp_path / "damaged"
    shutil.copytree(finished_run[0], run, ignore=shutil.ignore_patterns("eval_*", "export"))
    (run / "config.json").write_text("{\n")
    images = finished_run[0].parent.parent / "synthetic" / "images"
    assert predict_main([str(run), str(images), "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert str(run / "config.json") in err and "Traceback" not in err
    # A key set twice: the bad value's --set is blamed, not the first one's.
    path = write_config(tiny_experiment)
    assert train_main([str(path), "--output", str(tmp_path / "runs"), "--set",
                       "training.epochs=2", "--set", "training.epochs=-1"]) == 2
    err = capsys.readouterr().err
    assert "--set training.epochs=-1" in err and "--set training.epochs=2" not in err
    # A read-only export folder is a file-system error naming the path, not "cannot be
    # exported" (as root, permissions do not stop a write: the fault is injected).
    def read_only(self, filepath, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(filepath))
    monkeypatch.setattr(keras.Model, "export", read_only)
    out = tmp_path / "ro" / "model"
    assert export_main([str(finished_run[0]), "--format", "savedmodel", "--output",
                        str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: Read-only file system (choose a writable --output)" in err
    assert "cannot be exported" not in err and not out.exists()


def test_temporary_folders_of_killed_processes_are_removed_by_the_next_one(tmp_path):
    """A SIGKILLed predict, explain or non-chief worker cannot remove its staging or scratch
    folder; the next process using the same prefix removes the folders whose process is gone,
    and leaves those of running processes alone."""
    import os
    import subprocess
    import sys

    from kerasmed.cli._common import staged_output
    from kerasmed.runfiles import owned_tempdir

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = tmp_path / f".kerasmed-predict-{gone}-x1"
        alive = tmp_path / f".kerasmed-predict-{running.pid}-x2"
        other = tmp_path / f".kerasmed-explain-{gone}-x3"  # another prefix: not ours to touch
        for folder in (orphan, alive, other):
            (folder / "masks").mkdir(parents=True)
        with staged_output(tmp_path, ".kerasmed-predict-") as staging:
            assert staging.name.startswith(f".kerasmed-predict-{os.getpid()}-")
            (staging / "a.png").write_bytes(b"x")
        assert not orphan.exists() and alive.is_dir() and other.is_dir()
        assert (tmp_path / "a.png").read_bytes() == b"x" and not staging.exists()
        scratch = owned_tempdir("kerasmed-worker-", tmp_path)
        assert scratch.is_dir() and scratch.parent == tmp_path
    finally:
        running.kill()
        running.wait()
