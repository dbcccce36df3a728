"""kerasmed-tune: Bayesian optimisation over an experiment's tune section, resumable."""

import json
from pathlib import Path

import pandas as pd
import pytest

from kerasmed.cli import tune_main
from kerasmed.experiment.tune import check_search_space

SPACE = {"trials": 3,
         "params": {"training.optimizer.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                    "model.params.filters": {"choices": [2, 4]}}}


@pytest.fixture
def tunable(tiny_experiment):
    tiny_experiment["training"]["epochs"] = 1
    tiny_experiment["tune"] = json.loads(json.dumps(SPACE))
    return tiny_experiment


def test_a_study_resumes_after_an_interruption(write_config, tunable, tmp_path, monkeypatch,
                                               capsys):
    import kerasmed.experiment.runs as runs

    real_train, calls = runs.train, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)
    monkeypatch.setattr(runs, "train", interrupted)
    config = write_config(tunable)
    monkeypatch.chdir(tmp_path)  # relative folders: trials.csv still names runs absolutely
    out = Path("tuning")
    assert tune_main([str(config), "--output", str(out)]) == 130
    (folder,) = out.iterdir()
    assert (folder / "study.db").exists()
    first = pd.read_csv(folder / "trials.csv")
    assert first["state"].tolist() == ["complete", "fail"]
    monkeypatch.setattr(runs, "train", real_train)
    assert tune_main(["--resume", str(folder)]) == 0
    trials = pd.read_csv(folder / "trials.csv")
    assert (trials["state"] == "complete").sum() == 3 and len(trials) == 4
    assert {"param:training.optimizer.learning_rate", "param:model.params.filters", "value",
            "seconds", "run_dir"} <= set(trials.columns)
    lr = trials["param:training.optimizer.learning_rate"]
    assert ((lr >= 1e-4) & (lr <= 1e-2)).all()
    assert lr.nunique() == 4  # the resume samples with its own seed: new values
    assert trials["run_dir"].dropna().map(lambda p: Path(p).is_absolute()).all()
    assert trials["run_dir"].notna().sum() == 4  # the interrupted trial's run too
    runs_made = sorted((folder / "trials").iterdir())
    assert len(runs_made) == 3  # every complete trial is a normal run directory
    best = json.loads((folder / "best.json").read_text())
    assert best["value"] == pytest.approx(trials["value"].max())
    rerun = json.loads((folder / "best_experiment.json").read_text())
    assert "tune" not in rerun
    assert rerun["training"]["optimizer"]["learning_rate"] == \
        best["params"]["training.optimizer.learning_rate"]
    assert rerun["model"]["params"]["filters"] == best["params"]["model.params.filters"]
    assert (folder / "optimization_history.png").exists()
    assert (folder / "param_importances.png").exists()
    assert "best value" in capsys.readouterr().out


@pytest.mark.parametrize("tune, message", [
    ({"params": {"training.optimizer.lerning_rate": {"low": 1e-4, "high": 1e-2}}},
     "unknown optimizer 'adam' argument 'lerning_rate'"),
    ({"params": {"training.optimizer.learning_rate": {"low": 1e-2, "high": 1e-4}}},
     "empty range"),
    ({"params": {"data.augmentation.3.probability": {"low": 0.1, "high": 0.9}}},
     "no such key"),
    ({"params": {"model.params.filterz": {"choices": [4, 8]}}}, "filterz"),
    ({"weights": {"key": "model.params.alphas", "size": 4, "total": 1.0, "min": 0.3}},
     "constraint cannot hold"),
    ({"params": {"training.optimizer.learning_rate": {"low": 0.001, "high": 0.01,
                                                      "step": 0}}}, "step must be a number > 0"),
    ({"params": {"training.optimizer.learning_rate": {"low": 0.001, "high": 0.01, "log": True,
                                                      "step": 0.001}}},
     "step cannot be combined with log"),
    ({"params": {"model.params.filters": {"low": -4, "high": 4}}},
     "tune.params.model.params.filters = -4: model:"),
    ({"params": {"training.batch_size": {"low": 0, "high": 4}}},
     "tune.params.training.batch_size = 0"),
    ({"trials": 0, "params": {"model.params.filters": {"choices": [2]}}}, "tune.trials"),
    ({"heartbeat_seconds": 0.5, "params": {"model.params.filters": {"choices": [2]}}},
     "tune.heartbeat_seconds"),
], ids=["unknown-key", "empty-range", "missing-list-item", "unknown-model-parameter",
        "impossible-weights", "step-zero", "step-with-log", "negative-filters",
        "batch-size-zero", "no-trials", "fractional-heartbeat"])
def test_bad_search_spaces_fail_before_the_first_trial(write_config, tunable, tmp_path, capsys,
                                                       tune, message):
    tunable["tune"] = tune
    out = tmp_path / "tuning"
    assert tune_main([str(write_config(tunable)), "--output", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_drrmsan_output_weights_are_searched_with_their_sum(tiny_experiment):
    tiny_experiment["model"] = {"name": "drrmsan", "params": {"filters": 4}}
    tiny_experiment["tune"] = {"weights": {"key": "model.params.alphas", "size": 4,
                                           "total": 1.0, "min": 0.05}}
    assert check_search_space(tiny_experiment) == []
    import optuna

    from kerasmed.experiment.tune import sample_experiment

    trial = optuna.trial.FixedTrial({f"model.params.alphas[{i}]": v
                                     for i, v in enumerate([0.9, 0.1, 0.0, 0.5])})
    alphas = sample_experiment(tiny_experiment, trial)["model"]["params"]["alphas"]
    assert sum(alphas) == pytest.approx(1.0) and min(alphas) == pytest.approx(0.05)
    assert alphas[0] == pytest.approx(0.05 + 0.8 * 0.9 / 1.5)
