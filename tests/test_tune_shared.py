"""One tuning study shared by several kerasmed-tune workers: two on SQLite, three on a real,
throwaway PostgreSQL server. One worker is killed mid-trial; the others fail its trial through
Optuna's heartbeat and run it again, and the study ends with exactly its trials, none twice."""

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from kerasmed.cli import train_main
from kerasmed.data.synthetic import generate_polyp_dataset

optuna = pytest.importorskip("optuna")

# Seconds a worker may take for the whole study on two shared cores; a hang fails the test.
STUDY_TIMEOUT = 600
TUNE = """
import sys
from kerasmed.cli import tune_main
sys.exit(tune_main(sys.argv[1:]))
"""


def _missing(what):
    """Under CI (CI=true) a missing PostgreSQL fails the test; elsewhere it skips it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI must install it: see .ci/run)")
    pytest.skip(what)


def _postgres_bin(name):
    """PostgreSQL's program ``name``: on the PATH, else Debian's newest
    (``/usr/lib/postgresql/<version>/bin``, not on the PATH); ``None`` if absent."""
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return shutil.which(name) or (str(versions[-1]) if versions else None)


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server (Debian's package) on a loopback port; its URL. initdb
    refuses root, so as root the server runs as the ``postgres`` user (else ``nobody``)."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        _missing("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
    if importlib.util.find_spec("psycopg") is None:  # SQLAlchemy 2.1's postgresql:// driver
        _missing('the PostgreSQL driver is not installed (pip install -e ".[test]")')
    run_as = []
    home = Path(tempfile.mkdtemp(prefix="kerasmed-pg-"))  # /tmp: reachable by that user
    if os.getuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            user = "nobody"
        shutil.chown(home, user)
        run_as = ["runuser", "-u", user, "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = home / "data"
    subprocess.run([*run_as, initdb, "-D", str(data), "-U", "kerasmed", "--auth=trust",
                    "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    subprocess.run([*run_as, pg_ctl, "-D", str(data), "-l", str(home / "log"), "-w", "-t", "60",
                    "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://kerasmed@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


def _run_shared_study(tiny_experiment, write_config, tmp_path, storage, workers, trials):
    """Start ``workers`` kerasmed-tune processes on one study of ``trials`` trials, SIGKILL
    the first in its first trial (the others start then), wait for the others; returns
    (study, trials.csv, killed trial number)."""
    tiny_experiment["training"]["epochs"] = 1
    tiny_experiment["tune"] = {
        "trials": trials, "pruner": None, "heartbeat_seconds": 2,
        "params": {"training.optimizer.learning_rate": {"low": 1e-4, "high": 1e-2,
                                                        "log": True}}}
    generate_polyp_dataset(tiny_experiment["data"]["root"], **tiny_experiment["data"]["synthetic"])
    path = write_config(tiny_experiment)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    def start(i):
        return subprocess.Popen([sys.executable, "-c", TUNE, str(path), "--storage", storage,
                                 "--study", "shared", "--output", str(tmp_path / f"worker{i}")],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    # The victim starts alone, so that it surely holds a trial when it is killed (on a busy
    # machine the others could otherwise take every trial before it starts); the others start
    # as soon as its trial is training, and find that trial's heartbeat stopping.
    procs = [start(0)]
    try:
        victim, deadline = procs[0], time.monotonic() + STUDY_TIMEOUT
        me = f"{socket.gethostname()}:{victim.pid}"
        killed = None
        while killed is None:
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the victim never started a trial"
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="shared", storage=storage)
            except KeyError:
                continue  # not created yet
            for t in study.get_trials(deepcopy=False,
                                      states=(optuna.trial.TrialState.RUNNING,)):
                run_dir = t.user_attrs.get("run_dir")
                if t.user_attrs.get("worker") == me and run_dir and \
                        (Path(run_dir) / "summary.json").exists():  # training under way
                    procs += [start(i) for i in range(1, workers)]
                    victim.send_signal(signal.SIGKILL)
                    killed = t.number
        victim.communicate()
        for proc in procs[1:]:
            _, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    (folder,) = (tmp_path / "worker1").iterdir()
    study = optuna.load_study(study_name="shared", storage=storage)
    return study, folder, killed


def _check_shared_study(study, folder, killed, trials, workers, tmp_path):
    table = pd.read_csv(folder / "trials.csv")
    states = table.set_index("number")["state"]
    # Exactly the trials asked for, however many workers: no more, none left running.
    assert (states == "complete").sum() == trials
    assert set(states) <= {"complete", "fail"}
    complete = table[table["state"] == "complete"]
    lr = complete["param:training.optimizer.learning_rate"]
    assert lr.nunique() == trials  # every worker (and every retry) proposed new values
    # Each worker sampled with its own seed.
    seeds = {t.user_attrs["worker"]: t.user_attrs["sampler_seed"] for t in study.trials
             if "worker" in t.user_attrs}
    assert len(seeds) == workers and len(set(seeds.values())) == workers
    # The killed worker's trial was failed through the heartbeat and run again, once.
    assert states[killed] == "fail"
    retried = table.set_index("number")["retried_as"][killed]
    assert states[retried] == "complete"
    assert table.set_index("number")["retry_of"][retried] == killed
    params = table.set_index("number")["param:training.optimizer.learning_rate"]
    assert params[retried] == params[killed]
    killed_run = Path(table.set_index("number")["run_dir"][killed])
    summary = json.loads((killed_run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["retried_as"] == retried
    assert "stopped" in summary["error"]
    retry_summary = json.loads((Path(table.set_index("number")["run_dir"][retried])
                                / "summary.json").read_text())
    assert retry_summary["tune"] == {"trial": int(retried), "retry_of": int(killed)}
    # Every run folder by its absolute path, whichever worker ran it.
    assert all(Path(p).is_absolute() for p in table["run_dir"].dropna())
    # The best trial's experiment file reproduces its score.
    best = json.loads((folder / "best.json").read_text())
    assert best["value"] == pytest.approx(complete["value"].max())
    out = tmp_path / "rerun"
    assert train_main([str(folder / "best_experiment.json"), "--output", str(out)]) == 0
    (rerun,) = out.iterdir()
    rerun_best = json.loads((rerun / "summary.json").read_text())["best"]["value"]
    assert rerun_best == pytest.approx(best["value"], abs=1e-5)


def test_two_workers_share_a_sqlite_study(tiny_experiment, write_config, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study, folder, killed = _run_shared_study(tiny_experiment, write_config, tmp_path, storage,
                                              workers=2, trials=3)
    _check_shared_study(study, folder, killed, 3, 2, tmp_path)


def test_three_workers_share_a_postgresql_study(postgres, tiny_experiment, write_config,
                                                tmp_path):
    study, folder, killed = _run_shared_study(tiny_experiment, write_config, tmp_path,
                                              postgres, workers=3, trials=4)
    _check_shared_study(study, folder, killed, 4, 3, tmp_path)
