"""Multi-worker training for real: two kerasmed-train processes on loopback ports, TF_CONFIG
for each, MultiWorkerMirroredStrategy; a worker killed mid-run and the run resumed; the cluster
from a (constructed) Slurm job step when TF_CONFIG is absent."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import train_main
from kerasmed.data.synthetic import generate_polyp_dataset
from kerasmed.experiment.files import load_config
from kerasmed.experiment.schema import ConfigError
from kerasmed.training import tf_distribute

# Seconds a worker process may take (TensorFlow's start, the cluster's handshake, a few tiny
# epochs on two shared cores); a hang fails the test instead of the suite.
WORKER_TIMEOUT = 300
# Seconds the surviving worker may take to stop once its peer is killed (TensorFlow's health
# check aborts the collectives; measured: about 10 s).
STOP_TIMEOUT = 120

# Each worker runs kerasmed-train through this, which also saves the model's final trainable
# weights (argv[1]) so that the test can compare the workers' models. (BatchNormalization's
# moving statistics are each worker's own: Keras' synchronized=False, docs/scaling.md.)
WORKER = """
import sys
import numpy as np
import kerasmed.experiment.runs as runs
from kerasmed.cli import train_main

real = runs.run_training

def keep_weights(config, run_dir, model, *args, **kwargs):
    try:
        return real(config, run_dir, model, *args, **kwargs)
    finally:
        np.savez(sys.argv[1], *[v.numpy() for v in model.trainable_weights])

runs.run_training = keep_weights
sys.exit(train_main(sys.argv[2:]))
"""

RUN_FILES = {"config.json", "config.source.json", "split.json", "history.csv", "plots",
             "best.keras", "last.keras", "state.json", "summary.json"}


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture
def cluster(tiny_experiment, write_config, tmp_path):
    """``start(args, tag)``: the two workers of a multi-worker run of the tiny experiment,
    started with ``kerasmed-train ARGS`` (``{config}`` is the experiment file); returns the
    processes, worker 0 (the chief) first. Each saves its final weights in
    ``tmp_path/<tag>_<index>.npz`` (trainable ones). Every process is killed at the end."""
    tiny_experiment["training"]["distribution"] = "multi_worker"
    # Made once here: two workers generating one dataset at once would race.
    generate_polyp_dataset(tiny_experiment["data"]["root"], **tiny_experiment["data"]["synthetic"])
    started = []

    def start(args, tag, epochs=2):
        tiny_experiment["training"]["epochs"] = epochs
        path = write_config(tiny_experiment)
        workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
        procs = []
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3")
            argv = [a.replace("{config}", str(path)) for a in args]
            procs.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, str(tmp_path / f"{tag}_{index}.npz"), *argv],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        started.extend(procs)
        return procs

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _finish(proc, timeout=WORKER_TIMEOUT):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_two_workers_train_one_run_written_by_the_chief(cluster, tiny_experiment, write_config,
                                                        tmp_path):
    out = tmp_path / "runs"
    procs = cluster(["{config}", "--output", str(out)], "run")
    (chief_rc, chief_out, chief_err), (rc, worker_out, worker_err) = map(_finish, procs)
    assert chief_rc == 0, chief_err[-3000:]
    assert rc == 0, worker_err[-3000:]
    assert "worker 1 of 2 done (completed)" in worker_out
    # The chief owns the run directory; the other worker wrote nothing beside or into it.
    (run_dir,) = out.iterdir()
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["distribution"] == {"kind": "multi_worker", "replicas": 2}
    # Synchronous training: both workers end with the same trained weights.
    chief, worker = (np.load(tmp_path / f"run_{i}.npz") for i in range(2))
    assert len(chief.files) == len(worker.files) > 0
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name])
    # The same global batches as one process: the same curve, up to the order of the sums.
    tiny_experiment["training"]["distribution"] = None
    assert train_main([str(write_config(tiny_experiment, "single")), "--output",
                       str(tmp_path / "single")]) == 0
    (single_dir,) = (tmp_path / "single").iterdir()
    single = pd.read_csv(single_dir / "history.csv")
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(history[column], single[column], atol=0.02)


def test_a_killed_worker_stops_the_other_and_the_run_resumes(cluster, tmp_path):
    out = tmp_path / "runs"
    chief, worker = cluster(["{config}", "--output", str(out)], "killed", epochs=3)
    deadline = time.monotonic() + WORKER_TIMEOUT
    while not list(out.glob("*/state.json")):  # the first epoch is checkpointed
        assert chief.poll() is None and worker.poll() is None, chief.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no epoch completed"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    rc, _, err = _finish(chief, STOP_TIMEOUT)
    assert time.monotonic() - killed < STOP_TIMEOUT
    assert rc == 1, err[-3000:]
    assert "the multi-worker run stopped: worker 1 stopped answering" in err, err[-3000:]
    assert "--resume" in err and "Traceback" not in err
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "UnavailableError" in summary["error"]
    done = summary["epochs_completed"]
    assert 1 <= done < 3
    before = pd.read_csv(run_dir / "history.csv")
    assert len(before) == done

    # Every worker restarts from the chief's last checkpoint (BackupAndRestore semantics).
    procs = cluster(["--resume", str(run_dir)], "resumed", epochs=3)
    (chief_rc, _, chief_err), (rc, _, err) = map(_finish, procs)
    assert chief_rc == 0, chief_err[-3000:]
    assert rc == 0, err[-3000:]
    assert [p.name for p in out.iterdir()] == [run_dir.name]
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(history.iloc[:done], before)  # kept, not retrained
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    chief_weights, worker_weights = (np.load(tmp_path / f"resumed_{i}.npz") for i in range(2))
    for name in chief_weights.files:
        np.testing.assert_array_equal(chief_weights[name], worker_weights[name])


SLURM_STEP = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2",
              "SLURM_STEP_NODELIST": "node[07-08]", "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}


def test_without_tf_config_the_cluster_comes_from_the_slurm_step(monkeypatch, write_config,
                                                                 tiny_experiment):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(tf_distribute.shutil, "which", lambda name: None)  # no nvidia-smi
    for name, value in SLURM_STEP.items():
        monkeypatch.setenv(name, value)
    assert tf_distribute.check_cluster() == "slurm"
    resolver = tf_distribute.slurm_resolver()
    assert resolver.cluster_spec().as_dict() == {"worker": ["node07:8888", "node08:8888"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    tiny_experiment["training"]["distribution"] = "multi_worker"
    path = write_config(tiny_experiment)
    assert load_config(path)["training"]["distribution"] == "multi_worker"
    # TF_CONFIG, when set, wins.
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert tf_distribute.check_cluster() == "TF_CONFIG"
    monkeypatch.delenv("TF_CONFIG")
    monkeypatch.delenv("SLURM_STEP_NODELIST")
    with pytest.raises(ConfigError, match="the Slurm step lacks SLURM_STEP_NODELIST"):
        load_config(path)
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node07")
    monkeypatch.setenv("SLURM_PROCID", "one")
    with pytest.raises(ConfigError, match="SLURM_PROCID: expected a whole number"):
        load_config(path)


def test_the_survivor_blames_the_lost_worker_not_itself(monkeypatch):
    """TensorFlow's message can name the reporting task after the unhealthy ones (the gRPC
    details); seen in CI as "worker 0, worker 1 stopped answering" on worker 0."""
    import types

    import tensorflow as tf

    resolver = types.SimpleNamespace(task_type="worker", task_id=0)
    monkeypatch.setattr(tf_distribute, "_STRATEGY",
                        types.SimpleNamespace(cluster_resolver=resolver))
    message = ("Error reported from /job:worker/replica:0/task:0: The following tasks are "
               "unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n"
               "Additional GRPC error information from remote target "
               "/job:worker/replica:0/task:0")
    err = tf.errors.UnavailableError(None, None, message)
    assert tf_distribute.lost_workers(err) == ["worker 1"]
    resolver.task_id = 1  # the same loss seen from worker 1: it never blames itself
    assert tf_distribute.lost_workers(err) == ["worker 0"]
    resolver.task_id = 0  # a message naming no other task names nobody
    assert tf_distribute.lost_workers(tf.errors.UnavailableError(
        None, None, message.replace("task:1", "task:0"))) == []
    assert tf_distribute.lost_workers(RuntimeError("unhealthy")) is None
