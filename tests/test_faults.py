"""Fault injection: a diverged run never looks successful, disk faults give one-line errors and
keep what was written before, interrupted and killed runs stay consistent and resume, corrupt
inputs are reported before a run folder exists (or skipped and recorded), and nothing is
half-written."""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
import warnings

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import eval_main, predict_main, train_main
from kerasmed.data.lookalike import write_image


def _run(write_config, config, tmp_path, *extra):
    """``kerasmed-train`` of ``config``; returns ``(exit code, run dir or None)``."""
    out = tmp_path / "runs"
    code = train_main([str(write_config(config)), "--output", str(out), *extra])
    runs = sorted(out.iterdir()) if out.exists() else []
    assert len(runs) <= 1
    return code, (runs[0] if runs else None)


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def _finite(path):
    model = keras.saving.load_model(path)
    return all(np.isfinite(w).all() for w in model.get_weights())


# ---------------------------------------------------------------------------------- divergence

def test_divergence_at_the_first_batch_fails_and_leaves_no_checkpoint(write_config,
                                                                       tiny_experiment, tmp_path,
                                                                       capsys):
    tiny_experiment["training"]["optimizer"] = {"name": "sgd", "learning_rate": 1e30}
    with pytest.warns(UserWarning, match="far outside the usual range"):
        code, run_dir = _run(write_config, tiny_experiment, tmp_path)
    assert code == 3
    err = capsys.readouterr().err
    assert "diverged" in err and "lower training.optimizer.learning_rate" in err
    summary = _summary(run_dir)
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 0
    record = summary["diverged"]
    assert record["epoch"] == 1 and record["batch"] >= 1 and "learning_rate" in record["hint"]
    assert not (run_dir / "best.keras").exists() and not (run_dir / "last.keras").exists()
    assert summary["checkpoints"]["best"] is None
    # Nothing to predict with: the hint says why.
    image = tmp_path / "x.png"
    write_image(image, np.zeros((40, 40, 3), np.uint8))
    assert predict_main([str(run_dir), str(image), "--output", str(tmp_path / "p")]) == 2
    assert "no best.keras" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_divergence_later_keeps_the_last_finite_checkpoint(write_config, tiny_experiment,
                                                           tmp_path):
    # 12 training images, batch 4: 3 steps an epoch; from step 3 on the learning rate explodes.
    tiny_experiment["training"].update(
        epochs=3, optimizer={"name": "sgd", "learning_rate": 0.01},
        lr_schedule={"name": "PiecewiseConstantDecay", "boundaries": [3],
                     "values": [0.01, 1e30]})
    code, run_dir = _run(write_config, tiny_experiment, tmp_path)
    assert code == 3
    summary = _summary(run_dir)
    assert summary["status"] == "diverged" and summary["diverged"]["epoch"] == 2
    assert summary["diverged"]["last_finite_loss"] is not None
    assert summary["epochs_completed"] == 1 and summary["best"]["epoch"] == 1
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1]
    assert json.loads((run_dir / "state.json").read_text())["epochs_completed"] == 1
    assert _finite(run_dir / "last.keras") and _finite(run_dir / "best.keras")


def test_a_diverged_classifier_is_not_scored_but_left_to_the_guard(tmp_path, monkeypatch):
    """A planned classifier diverged within an epoch: the per-epoch classification scores met
    NaN probabilities and the run ended as "error: Input contains NaN." (exit 2, as if the
    input were bad) instead of diverged. Non-finite probabilities are now not scored."""
    from kerasmed.training import callbacks

    truth = np.array([0, 1, 0, 1])
    prob = np.array([[0.9, 0.1], [np.nan, np.nan], [0.8, 0.2], [0.3, 0.7]])
    monkeypatch.setattr(callbacks, "predict_labels", lambda model, dataset: (truth, prob))
    metrics = callbacks.ClassificationMetrics(None, ["a", "b"], tmp_path)
    logs = {"loss": 0.5}
    metrics.on_epoch_end(0, logs)
    assert np.isnan(logs["val_macro_f1"]) and np.isnan(logs["val_mean_auc"])
    assert not (tmp_path / "confusion_matrix.png").exists()
    prob[1] = [0.2, 0.8]
    metrics.on_epoch_end(1, logs)
    assert logs["val_macro_f1"] == 1.0 and (tmp_path / "confusion_matrix.png").exists()


def test_inference_refuses_a_model_with_non_finite_weights(tmp_path, capsys):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid",
                                                    name="head")(inputs))
    kernel, bias = model.get_layer("head").get_weights()
    model.get_layer("head").set_weights([kernel * np.nan, bias])
    model.save(tmp_path / "nan.keras")
    write_image(tmp_path / "data" / "images" / "a.png", np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "data" / "masks" / "a.png", np.zeros((16, 16), np.uint8))
    assert eval_main([str(tmp_path / "nan.keras"), "--data", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "nan.keras" in err and "non-finite weights" in err
    assert predict_main([str(tmp_path / "nan.keras"), str(tmp_path / "data" / "images"),
                         "--output", str(tmp_path / "pred")]) == 2
    assert "non-finite weights" in capsys.readouterr().err


@pytest.mark.parametrize("optimizer, message", [
    ({"name": "adam", "learning_rate": -0.001}, "learning_rate must be > 0"),
    ({"name": "sgd", "learning_rate": 0.01, "momentum": 1.0}, "momentum must be in [0, 1)"),
    ({"name": "adam", "learning_rate": 0.001, "beta_2": 1.5}, "beta_2 must be in [0, 1)"),
])
def test_impossible_hyperparameters_fail_before_training(write_config, tiny_experiment, tmp_path,
                                                         capsys, optimizer, message):
    tiny_experiment["training"]["optimizer"] = optimizer
    code, run_dir = _run(write_config, tiny_experiment, tmp_path)
    assert code == 2 and run_dir is None
    err = capsys.readouterr().err
    assert "training.optimizer" in err and message in err


def test_a_bad_set_value_names_the_set_argument(write_config, tiny_experiment, tmp_path, capsys):
    code, _ = _run(write_config, tiny_experiment, tmp_path, "--set", "training.epochs=abc")
    assert code == 2
    assert "--set training.epochs=abc: training.epochs: expected an integer" in \
        capsys.readouterr().err


# ----------------------------------------------------------------------------- disk faults

def _fail_saves(monkeypatch, after, error):
    """Make ``model.save`` raise ``error`` from its ``after + 1``-th call on."""
    calls = {"n": 0}
    original = keras.Model.save

    def save(self, filepath, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise error
        return original(self, filepath, *args, **kwargs)
    monkeypatch.setattr(keras.Model, "save", save)


@pytest.mark.parametrize("code_, text", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EROFS, "Read-only file system")])
def test_a_disk_fault_while_checkpointing_keeps_the_last_good_checkpoint(
        write_config, tiny_experiment, tmp_path, capsys, monkeypatch, code_, text):
    tiny_experiment["training"]["epochs"] = 3
    # Epoch 1 saves best and last; epoch 2's first save fails.
    _fail_saves(monkeypatch, 2, OSError(code_, text, "last.keras"))
    code, run_dir = _run(write_config, tiny_experiment, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and text in err and "Traceback" not in err and len(err.splitlines()) == 1
    summary = _summary(run_dir)
    assert summary["status"] == "failed" and text in summary["error"]
    assert summary["epochs_completed"] == 1
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1]
    monkeypatch.undo()
    assert _finite(run_dir / "last.keras")
    assert not list(run_dir.glob(".*"))  # no temporary file left behind


def test_output_that_cannot_be_written_gives_one_line(write_config, tiny_experiment, tmp_path,
                                                      capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert train_main([str(write_config(tiny_experiment)), "--output", str(afile)]) == 2
    err = capsys.readouterr().err
    assert str(afile) in err and "is a file, not a folder" in err and "Traceback" not in err
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        if "readonly" in str(path):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)
    monkeypatch.setattr(os, "mkdir", read_only)
    target = tmp_path / "readonly"
    assert train_main([str(write_config(tiny_experiment)), "--output", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(target) in err and "Read-only file system" in err and "Traceback" not in err


def test_missing_imagenet_weights_give_one_line_naming_the_file(
        write_config, tiny_experiment, tmp_path, capsys, monkeypatch):
    """An error of kerasmed's own that is an OSError without a filename (the weights are not
    in the Keras cache and cannot be downloaded) is printed as its message, nothing before it."""
    from keras.src.backend import config

    (tmp_path / "keras_home").mkdir()  # Keras falls back to /tmp/.keras for a missing one
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")
    monkeypatch.setattr(keras.utils, "get_file", offline)
    tiny_experiment["model"] = {"name": "backbone_unet", "params": {
        "backbone_name": "mobilenetv2", "encoder_weights": "imagenet",
        "decoder_filters": [8, 8, 8, 8, 8]}}
    code, _ = _run(write_config, tiny_experiment, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("kerasmed-train: error: encoder_weights='imagenet' for backbone "
                          "'mobilenetv2' needs the file 'mobilenet_v2_weights"), err
    assert str(tmp_path / "keras_home" / "models") in err


# --------------------------------------------------------- a run's files, skips and signals

def _corrupt_png(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory):
    """A tiny run under umask 022, with verbose 1 and a redirected stdout, that skips one
    truncated image (data.on_error: skip)."""
    from kerasmed.data.synthetic import generate_polyp_dataset

    tmp = tmp_path_factory.mktemp("skip")
    root = generate_polyp_dataset(tmp / "data", n_images=10, height=40, width=48, seed=4)
    bad = sorted((root / "images").iterdir())[3]
    _corrupt_png(bad)
    config = {"name": "skip", "seed": 2,
              "model": {"name": "unet", "params": {"filters": 4, "depth": 2}},
              "data": {"dataset": "folder", "root": str(root), "image_size": [32, 32],
                       "on_error": "skip", "val_fraction": 0.3},
              "training": {"epochs": 1, "batch_size": 2, "verbose": 1}}
    (tmp / "skip.json").write_text(json.dumps(config))
    previous = os.umask(0o022)
    try:
        proc = subprocess.run([sys.executable, "-m", "kerasmed.cli", str(tmp / "skip.json"),
                               "--output", str(tmp / "runs")], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    finally:
        os.umask(previous)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp / "runs").iterdir()
    return run_dir, bad, proc


def test_skipped_samples_are_recorded_and_left_out_of_the_split(skipped_run):
    run_dir, bad, _ = skipped_run
    summary = _summary(run_dir)
    assert [s["image"] for s in summary["skipped"]] == [str(bad)]
    assert str(bad) in summary["skipped"][0]["reason"]
    split = json.loads((run_dir / "split.json").read_text())
    assert str(bad) not in split["train"] + split["val"]
    assert summary["train_samples"] + summary["val_samples"] == 9


def test_run_files_follow_the_umask(skipped_run):
    run_dir = skipped_run[0]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"config.json", "history.csv", "summary.json", "state.json", "split.json",
            "best.keras", "last.keras"} <= {p.name for p in files}
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o644}, modes


def test_a_redirected_log_gets_one_line_per_epoch_and_no_third_party_noise(skipped_run):
    proc = skipped_run[2]
    assert "\r" not in proc.stdout and "\x08" not in proc.stdout
    assert len([line for line in proc.stdout.splitlines() if " - val_dice: " in line]) == 1
    # kerasmed's own warning (the skipped image) shows; TensorFlow's start-up chatter does not.
    assert "kerasmed: warning: SegmentationDataset: skipped 1 of" in proc.stderr
    assert "oneDNN" not in proc.stderr and "cuda" not in proc.stderr.lower()
    assert "train_ds = make(" not in proc.stderr  # a warning is one line, not source code


def test_warning_filters_keep_kerasmed_warnings_only():
    from kerasmed.cli._common import quiet
    from kerasmed.names import KerasmedWarning

    with warnings.catch_warnings(record=True) as seen:
        quiet(False)
        warnings.warn("from a library", UserWarning)
        warnings.warn("from kerasmed", KerasmedWarning)
    assert [str(w.message) for w in seen] == ["from kerasmed"]


@pytest.mark.parametrize("fault", ["truncated", "grey_mask", "size"])
def test_corrupt_training_data_fails_before_the_run_folder(write_config, tmp_path, capsys,
                                                           fault):
    from kerasmed.data.synthetic import generate_polyp_dataset

    root = generate_polyp_dataset(tmp_path / "data", n_images=6, height=40, width=48)
    image = sorted((root / "images").iterdir())[2]
    mask = root / "masks" / image.name
    if fault == "truncated":
        _corrupt_png(image)
        culprit = image
    elif fault == "grey_mask":
        values = np.zeros((40, 48), np.uint8)
        values[:, 16:32], values[:, 32:] = 128, 255
        write_image(mask, values)
        culprit = mask
    else:
        write_image(mask, np.zeros((20, 24), np.uint8))
        culprit = mask
    config = {"model": {"name": "unet", "params": {"filters": 4, "depth": 2}},
              "data": {"dataset": "folder", "root": str(root), "image_size": [32, 32],
                       "val_fraction": 0.34},
              "training": {"epochs": 1, "batch_size": 2, "verbose": 0}}
    code, run_dir = _run(write_config, config, tmp_path)
    assert code == 2 and run_dir is None
    assert culprit.name in capsys.readouterr().err


def test_predict_on_error_raise_writes_nothing_and_skip_predicts_the_rest(skipped_run, tmp_path,
                                                                          capsys):
    run_dir, bad, _ = skipped_run
    good = sorted(p for p in bad.parent.iterdir() if p != bad)[:2]
    out = tmp_path / "pred"
    assert predict_main([str(run_dir), str(good[0]), str(bad), str(good[1]), "--output",
                         str(out)]) == 2
    err = capsys.readouterr().err
    assert bad.name in err and "nothing was written" in err
    assert not out.exists()
    assert predict_main([str(run_dir), str(good[0]), str(bad), str(good[1]), "--output",
                         str(out), "--on-error", "skip"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in good)
    assert str(bad) in capsys.readouterr().err
    for p in good:
        assert cv2.imread(str(out / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED).shape == (40, 48)


def test_evaluating_a_run_without_best_suggests_the_last_checkpoint(skipped_run, tmp_path,
                                                                    capsys):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(skipped_run[0], run_dir)
    (run_dir / "best.keras").unlink()
    assert eval_main([str(run_dir)]) == 2
    assert "--checkpoint last" in capsys.readouterr().err
    assert eval_main([str(run_dir), "--checkpoint", "last", "--overlays", "1"]) == 0


def test_interrupt_between_history_and_checkpoint_keeps_the_files_consistent(
        write_config, tiny_experiment, tmp_path, monkeypatch):
    from kerasmed.training.callbacks import RunCheckpoint

    tiny_experiment["training"]["epochs"] = 3
    original = RunCheckpoint.on_epoch_end

    def interrupted(self, epoch, logs=None):
        if epoch == 1:  # epoch 2's history row is written; its checkpoint is not
            raise KeyboardInterrupt
        return original(self, epoch, logs)
    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", interrupted)
    code, run_dir = _run(write_config, tiny_experiment, tmp_path)
    assert code == 130
    summary = _summary(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    history = pd.read_csv(run_dir / "history.csv")
    assert summary["status"] == "interrupted"
    assert summary["epochs_completed"] == state["epochs_completed"] == len(history) == 1
    monkeypatch.undo()
    assert train_main(["--resume", str(run_dir)]) == 0
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_signalled_run_is_consistent_and_resumes(write_config, tiny_experiment, tmp_path,
                                                   sig):
    tiny_experiment["training"].update(epochs=4, verbose=0)
    tiny_experiment["data"]["synthetic"]["n_images"] = 24
    path = write_config(tiny_experiment)
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "kerasmed.cli", str(path), "--output",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        states = list(out.glob("*/state.json")) if out.exists() else []
        if states and json.loads(states[0].read_text())["epochs_completed"] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    (run_dir,) = out.iterdir()
    done = json.loads((run_dir / "state.json").read_text())["epochs_completed"]
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == list(range(1, done + 1))
    if sig != signal.SIGKILL:  # Ctrl-C, or a scheduler's stop: a clean, recorded stop
        assert proc.returncode == (130 if sig == signal.SIGINT else 143), err[-2000:]
        assert "Traceback" not in err
        summary = _summary(run_dir)
        assert summary["status"] == "interrupted" and summary["epochs_completed"] == done
        assert summary["signal"] == signal.Signals(sig).name
    assert train_main(["--resume", str(run_dir)]) == 0
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == list(range(1, 5))


def test_kerasmed_load_model_names_a_missing_class(tmp_path):
    import kerasmed

    @keras.saving.register_keras_serializable(package="elsewhere")
    class Twice(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((4,))
    keras.Model(inputs, Twice(name="twice")(inputs)).save(tmp_path / "m.keras")
    keras.saving.get_custom_objects().pop("elsewhere>Twice")
    with pytest.raises(TypeError, match="Twice.*import the package that defines it"):
        kerasmed.load_model(tmp_path / "m.keras")
    assert kerasmed.load_model(tmp_path / "m.keras", custom_objects={"elsewhere>Twice": Twice})
