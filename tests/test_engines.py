"""The training engines: fit and the train_on_batch loop, resume, precision policies."""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import train_main
from kerasmed.experiment.schema import ConfigError
from kerasmed.experiment import resume


def _train(write_config, experiment, tmp_path, *overrides):
    out = tmp_path / "runs"
    before = set(out.iterdir()) if out.exists() else set()
    args = [str(write_config(experiment)), "--output", str(out)]
    for o in overrides:
        args += ["--set", o]
    assert train_main(args) == 0
    (run_dir,) = set(out.iterdir()) - before
    return run_dir


def test_fit_and_loop_report_the_same_columns(write_config, tiny_experiment, tmp_path):
    fit_dir = _train(write_config, tiny_experiment, tmp_path)
    loop_dir = _train(write_config, tiny_experiment, tmp_path, 'training.loop="train_on_batch"')
    fit_hist = pd.read_csv(fit_dir / "history.csv")
    loop_hist = pd.read_csv(loop_dir / "history.csv")
    assert list(fit_hist.columns) == list(loop_hist.columns)
    assert len(loop_hist) == 2 and np.isfinite(loop_hist.drop(columns="epoch").to_numpy()).all()
    assert {p.name for p in fit_dir.iterdir()} == {p.name for p in loop_dir.iterdir()}
    assert {p.name for p in (fit_dir / "plots").iterdir()} == \
        {p.name for p in (loop_dir / "plots").iterdir()}
    # The loop's validation figures are real: the best checkpoint re-evaluates to them.
    summary = json.loads((loop_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["best"]["value"] == pytest.approx(loop_hist["val_dice"].max())


def test_loop_epoch_means_match_fit_on_the_first_epoch(write_config, tiny_experiment, tmp_path):
    # Same seed, same data order, same initial weights: the first epoch's figures agree.
    fit_dir = _train(write_config, tiny_experiment, tmp_path, "training.epochs=1")
    loop_dir = _train(write_config, tiny_experiment, tmp_path, "training.epochs=1",
                      'training.loop="train_on_batch"')
    a = pd.read_csv(fit_dir / "history.csv").drop(columns="epoch_time_s")
    b = pd.read_csv(loop_dir / "history.csv").drop(columns="epoch_time_s")
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=2e-3, atol=2e-4)


def test_resume_continues_at_the_right_epoch(write_config, tiny_experiment, tmp_path):
    run_dir = _train(write_config, tiny_experiment, tmp_path)  # 2 epochs
    steps = 12 // 4
    # Pretend the run had been asked for 4 epochs and was killed after 2 completed epochs,
    # while a third was being written (history has a row the checkpoint lacks).
    config = json.loads((run_dir / "config.json").read_text())
    config["training"]["epochs"] = 4
    (run_dir / "config.json").write_text(json.dumps(config))
    history = pd.read_csv(run_dir / "history.csv")
    pd.concat([history, history.tail(1).assign(epoch=3)]).to_csv(run_dir / "history.csv",
                                                                index=False)
    first_rows = history.copy()
    assert train_main(["--resume", str(run_dir)]) == 0
    resumed = pd.read_csv(run_dir / "history.csv")
    assert resumed["epoch"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(resumed.head(2), first_rows)
    model = keras.saving.load_model(run_dir / "last.keras")
    assert int(model.optimizer.iterations.numpy()) == 4 * steps
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_completed"] == 4 and summary["status"] == "completed"
    assert json.loads((run_dir / "state.json").read_text())["epochs_completed"] == 4


def test_resume_refuses_a_directory_without_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="cannot resume"):
        resume(tmp_path)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_outputs(write_config, tiny_experiment, tmp_path,
                                                     policy):
    run_dir = _train(write_config, tiny_experiment, tmp_path, f'training.precision="{policy}"',
                     "training.epochs=1")
    history = pd.read_csv(run_dir / "history.csv")
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["val_loss"]).all()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    # A checkpoint is loaded for more training under its own policy (as --resume does): under
    # float32, Keras would rebuild a plain optimizer and drop the loss-scale optimizer's state.
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.saving.load_model(run_dir / "last.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[1].dtype_policy.name == policy
    assert int(model.optimizer.iterations.numpy()) == 3
    if policy == "mixed_float16":
        assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    out = model.predict(np.random.rand(1, 32, 32, 3).astype("float32"), verbose=0)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_callbacks_and_schedule_from_the_experiment(write_config, tiny_experiment, tmp_path):
    tiny_experiment["training"].update(
        epochs=3, lr_schedule={"name": "CosineDecay", "alpha": 0.1},
        callbacks={"early_stopping": {"patience": 1, "min_delta": 10.0}, "tensorboard": True})
    run_dir = _train(write_config, tiny_experiment, tmp_path)
    history = pd.read_csv(run_dir / "history.csv")
    # min_delta=10 makes no epoch an improvement: early stopping ends the run after 2 epochs.
    assert len(history) == 2
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "stopped"
    assert history["learning_rate"].iloc[1] < history["learning_rate"].iloc[0] < 1e-3
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))


def test_kfold_runs_every_fold_and_tabulates_mean_and_std(write_config, tiny_experiment,
                                                          tmp_path, capsys):
    tiny_experiment["training"].update(epochs=1, folds=3)
    tiny_experiment["postprocess"] = {"select": True}
    out = tmp_path / "runs"
    # Two folds (the fewest with a spread) keep the test short; each fold is a full run.
    # --folds overrides the experiment's training.folds.
    assert train_main([str(write_config(tiny_experiment)), "--output", str(out), "--folds",
                       "2"]) == 0
    assert "post-processing chosen on the folds" in capsys.readouterr().out
    (parent,) = out.iterdir()
    assert sorted(p.name for p in parent.iterdir() if p.is_dir()) == ["fold_1", "fold_2"]
    table = pd.read_csv(parent / "folds.csv")
    assert table["fold"].tolist() == ["1", "2", "mean", "std", "ci95_low", "ci95_high"]
    values = table["val_dice"].iloc[:2].astype(float)
    assert values.iloc[0] != values.iloc[1]
    assert table["val_dice"].iloc[2] == pytest.approx(values.mean())
    assert table["val_dice"].iloc[3] == pytest.approx(values.std(ddof=1))
    # Student's t with 1 degree of freedom: t(0.975) = 12.706205.
    half = 12.706205 * values.std(ddof=1) / 2 ** 0.5
    assert table["val_dice"].iloc[4] == pytest.approx(values.mean() - half, abs=1e-6)
    assert table["val_dice"].iloc[5] == pytest.approx(values.mean() + half, abs=1e-6)
    vals = [set(json.loads((parent / f"fold_{i}" / "split.json").read_text())["val"])
            for i in (1, 2)]
    assert not (vals[0] & vals[1])
    assert sum(len(v) for v in vals) == 16  # every image is validated exactly once
    # The post-processing was chosen on the 16 out-of-fold predictions and recorded.
    chosen = json.loads((parent / "postprocess.json").read_text())
    assert chosen["images"] == 16 and chosen["tried"][0]["settings"] == {
        "fill_holes": False, "min_size": 0, "keep_largest": False}
    assert chosen["dice_with"] >= chosen["dice_without"]
    assert json.loads((parent / "summary.json").read_text())["postprocess"]["mask"] == \
        chosen["mask"]
    _check_kfold_ensemble(parent, tiny_experiment, tmp_path)


def _check_kfold_ensemble(parent, experiment, tmp_path):
    """A k-fold parent evaluates and predicts as the mean of its folds, with the chosen
    cleaning; without --data it refuses (each image trained some member)."""
    from kerasmed.cli import eval_main, predict_main
    from kerasmed.experiment import load_for_inference

    data = experiment["data"]["root"]
    run = load_for_inference(parent)
    assert run.is_ensemble and len(run.members) == 2
    assert run.cleaning.record() == json.loads((parent / "postprocess.json").read_text())["mask"]
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    members = [load_for_inference(parent / f"fold_{i}").model for i in (1, 2)]
    expected = (members[0].predict_on_batch(x) + members[1].predict_on_batch(x)) / 2
    np.testing.assert_allclose(run.model.predict_on_batch(x), expected, atol=1e-6)
    assert eval_main([str(parent)]) == 2  # no held-out images given
    assert eval_main([str(parent), "--data", data, "--overlays", "1"]) == 0
    (eval_dir,) = parent.glob("eval_*")
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["images"] == 16 and summary["mask_cleaning"] == run.cleaning.record()
    masks = tmp_path / "masks"
    image = sorted((Path(data) / "images").iterdir())[0]
    assert predict_main([str(parent / "fold_1"), str(image), "--output", str(masks),
                         "--ensemble", str(parent / "fold_2")]) == 0
    assert (masks / image.name.replace(image.suffix, ".png")).exists()


def test_auxiliary_outputs_get_the_decaying_weight():
    from kerasmed.experiment.schema import SCHEMA
    from kerasmed.training.aux_weight import AuxiliaryLossWeight, ScaledLoss
    from kerasmed.training.compile import Compilation

    inputs = keras.Input((8, 8, 1))
    aux = keras.layers.Conv2D(1, 1, activation="sigmoid", name="aux1")(inputs)
    main = keras.layers.Conv2D(1, 1, activation="sigmoid", name="main")(inputs)
    model = keras.Model(inputs, [aux, main])
    training = {k: v.default for k, v in SCHEMA["training"].items() if hasattr(v, "default")}
    training["callbacks"] = {k: v.default for k, v in SCHEMA["training"]["callbacks"].items()}
    compilation = Compilation(training, model)
    compilation.compile(model)
    assert Compilation.of(model) is compilation
    assert isinstance(model.loss["aux1"], ScaledLoss) and not isinstance(model.loss["main"],
                                                                         ScaledLoss)
    assert any(isinstance(c, AuxiliaryLossWeight) for c in compilation.callbacks())
    training["auxiliary_weight"] = 0.5
    compilation = Compilation(training, model)
    compilation.compile(model)
    assert float(model.loss["aux1"].weight.numpy()) == 0.5
    assert not any(isinstance(c, AuxiliaryLossWeight) for c in compilation.callbacks())
    assert compilation.history_columns() == [
        "loss", "aux1_loss", "main_loss", "main_dice", "main_iou",
        "val_loss", "val_aux1_loss", "val_main_loss", "val_main_dice", "val_main_iou"]


def test_loss_weights_reach_the_compile_and_name_outputs():
    from kerasmed.experiment.validate import section_defaults
    from kerasmed.training.compile import Compilation

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, [keras.layers.Conv2D(1, 1, activation="sigmoid", name=n)(inputs)
                                 for n in ("side1", "final")])
    training = {**section_defaults("training"), "loss_weights": {"side1": 0.25}}
    compilation = Compilation(training, model)
    assert compilation.loss_weights() == {"side1": 0.25, "final": 1.0}
    compilation.compile(model)
    assert compilation.arguments["loss_weights"] == {"side1": 0.25, "final": 1.0}
    with pytest.raises(ValueError, match="side9 is not one of side1, final"):
        Compilation({**training, "loss_weights": {"side9": 1.0}}, model).loss_weights()


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_compile_model_builds_the_optimizer_so_the_first_step_creates_no_variables(precision):
    """Slot variables created inside the first traced step make tf.function trace it twice."""
    from kerasmed.training.compile import compile_model
    from kerasmed.experiment.validate import section_defaults

    keras.mixed_precision.set_global_policy(precision)
    try:
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
        frozen = keras.layers.Conv2D(4, 1, name="frozen")
        frozen.trainable = False
        outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32",
                                      name="head")(frozen(x))
        model = keras.Model(inputs, outputs)
        compile_model(model, section_defaults("training"), steps_per_epoch=1)
        assert model.optimizer.built
        before = [v.path for v in model.optimizer.variables]
        # Adam's two moments for each trainable variable, none for the frozen layer's
        assert sum("_momentum" in p for p in before) == len(model.trainable_variables) == 4
        data = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
        model.fit(data, (data > 0.5).astype("float32"), batch_size=2, epochs=1, verbose=0)
        assert [v.path for v in model.optimizer.variables] == before
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _two_output_model(encoder):
    """A compiled model of two outputs ("side", "main") after ``encoder`` on 8x8 inputs, with
    a metric named by a string; returns ``(model, x, y, first batch)``."""
    from kerasmed.training.compile import compile_model
    from kerasmed.experiment.validate import section_defaults

    inputs = keras.Input((8, 8, 1))
    x = encoder(inputs)
    model = keras.Model(inputs, [keras.layers.Conv2D(1, 1, activation="sigmoid", name=n)(x)
                                 for n in ("side", "main")])
    compile_model(model, {**section_defaults("training"), "metrics": ["dice", "accuracy"]}, 2)
    data = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    y = {"side": (data > 0.5).astype("float32"), "main": (data > 0.5).astype("float32")}
    return model, data, y, (data[:2], {k: v[:2] for k, v in y.items()})


def test_training_state_is_built_before_the_first_step_of_a_multi_output_model():
    """Loss trackers of several outputs and a metric named by a string are created inside
    the first traced step unless built first."""
    from kerasmed.training.tracing import build_training_state

    model, data, y, batch = _two_output_model(keras.layers.Conv2D(4, 3, padding="same"))
    build_training_state(model, batch)
    state = [v.path for v in model.metrics_variables + model.optimizer.variables]
    assert any("side_loss" in p for p in state) and any("accuracy" in p for p in state)
    model.fit(data, y, batch_size=2, epochs=1, verbose=0)
    assert [v.path for v in model.metrics_variables + model.optimizer.variables] == state


def test_unfreeze_encoder_given_a_batch_traces_the_new_step_once():
    """The recompile at the unfreeze makes new loss trackers (two outputs) and a new metric
    named by a string; built from the batch, the new step is traced once: two traces in all."""
    from kerasmed.training.tracing import build_training_state
    from kerasmed.training.unfreeze import UnfreezeEncoder

    encoder = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same")],
                               name="encoder")
    encoder.trainable = False
    model, data, y, batch = _two_output_model(encoder)
    build_training_state(model, batch)
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    callback = UnfreezeEncoder(1, verbose=0, batch=batch)
    model.fit(data, y, batch_size=2, epochs=2, verbose=0, callbacks=[callback])
    assert callback.unfrozen_at == 1 and encoder.trainable
    assert len(traces) == 2


def test_unfreeze_encoder_from_the_experiment(write_config, tiny_experiment, tmp_path):
    from kerasmed.models import build

    tiny_experiment["model"] = {"name": "backbone_unet", "params": {
        "backbone_name": "mobilenetv2", "encoder_weights": None, "encoder_freeze": True,
        "decoder_filters": [16, 8, 8, 4, 4]}}
    keras.utils.set_random_seed(tiny_experiment["seed"])
    initial = build("backbone_unet", input_shape=(32, 32, 3),
                    **tiny_experiment["model"]["params"]).get_layer("encoder").get_weights()

    def encoder_after(**callbacks):
        tiny_experiment["training"]["callbacks"] = callbacks
        run_dir = _train(write_config, tiny_experiment, tmp_path)
        model = keras.saving.load_model(run_dir / "last.keras")
        return model.get_layer("encoder").get_weights()

    frozen = encoder_after()
    assert all(np.array_equal(a, b) for a, b in zip(initial, frozen))
    unfrozen = encoder_after(unfreeze_encoder={"epoch": 1})
    assert any(not np.array_equal(a, b) for a, b in zip(initial, unfrozen))
