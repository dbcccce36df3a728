"""Issue 26: a run folder is a portable artefact, and bad options or experiment values end in
one line (exit 2) before any work, with nothing left behind."""

import json
import shutil

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
