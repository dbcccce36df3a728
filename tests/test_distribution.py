"""Distribution from the experiment file: mirrored on two logical CPUs, multi-worker config."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from kerasmed.experiment.files import load_config
from kerasmed.experiment.schema import ConfigError
from kerasmed.training.tf_distribute import TFConfigError, parse_tf_config

TWO_WORKERS = {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
               "task": {"type": "worker", "index": 1}}


def test_mirrored_strategy_trains_over_two_logical_cpus(write_config, tiny_experiment, tmp_path):
    tiny_experiment["training"].update(distribution="mirrored", devices=["/cpu:0", "/cpu:1"],
                                       epochs=1)
    path = write_config(tiny_experiment)
    out = tmp_path / "runs"
    # Logical devices must be declared before TensorFlow starts, hence a fresh process.
    script = textwrap.dedent(f"""
        import sys, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from kerasmed.cli import train_main
        sys.exit(train_main([{str(path)!r}, "--output", {str(out)!r}]))
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["distribution"] == {"kind": "mirrored", "replicas": 2}
    assert summary["status"] == "completed" and summary["final"]["loss"] > 0


def test_tf_config_is_parsed_and_validated():
    assert parse_tf_config(json.dumps(TWO_WORKERS))["task"]["index"] == 1
    bad = [
        (None, "not set"),
        ("{nope", "not valid JSON"),
        (json.dumps({"cluster": {}, "task": {"type": "worker", "index": 0}}), "list the workers"),
        (json.dumps({"cluster": {"worker": ["host-without-port"]},
                     "task": {"type": "worker", "index": 0}}), "host:port"),
        (json.dumps({**TWO_WORKERS, "task": {"type": "worker", "index": 2}}), "task.index"),
        (json.dumps({**TWO_WORKERS, "task": {"type": "chief", "index": 0}}), "task.type"),
    ]
    for text, message in bad:
        env_backup = os.environ.pop("TF_CONFIG", None)
        try:
            with pytest.raises(TFConfigError, match=message):
                parse_tf_config(text if text is not None else None)
        finally:
            if env_backup is not None:
                os.environ["TF_CONFIG"] = env_backup


def test_multi_worker_experiment_checks_tf_config_before_training(write_config, tiny_experiment,
                                                                  monkeypatch):
    tiny_experiment["training"]["distribution"] = "multi_worker"
    path = write_config(tiny_experiment)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="training.distribution: TF_CONFIG is not set"):
        load_config(path)
    monkeypatch.setenv("TF_CONFIG", json.dumps(TWO_WORKERS))
    assert load_config(path)["training"]["distribution"] == "multi_worker"


def test_unknown_distribution_and_wrong_backend(write_config, tiny_experiment, tmp_path, capsys):
    tiny_experiment["training"]["distribution"] = "mirored"
    with pytest.raises(ConfigError, match="Did you mean 'mirrored'"):
        load_config(write_config(tiny_experiment))
    from kerasmed.cli import train_main
    tiny_experiment["training"]["distribution"] = "data_parallel"  # JAX's; this is TensorFlow
    assert train_main([str(write_config(tiny_experiment)), "--output", str(tmp_path / "r")]) == 2
    assert "JAX backend" in capsys.readouterr().err
