"""benchmarks/micronet_batch.py: the batch search (doubling + bisection) and a CPU smoke run.

The smoke run is started when the module is collected (a module-scoped fixture) so that it
overlaps the search tests, and runs under KERAS_BACKEND=jax with TensorFlow made unimportable
(a ``tensorflow`` package that raises ImportError, first on PYTHONPATH), as on the GPU
machines, which have JAX and no TensorFlow. The trials inherit that environment.
"""

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "micronet_batch.py"


def _load():
    spec = importlib.util.spec_from_file_location("micronet_batch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mb = _load()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    shim = tmp_path_factory.mktemp("no_tensorflow")
    (shim / "tensorflow").mkdir()
    (shim / "tensorflow" / "__init__.py").write_text(
        "raise ImportError('TensorFlow is not installed (simulated GPU machine)')\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_backend_optimization_level=0",   # faster compiles on CPU
           "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    json_path = shim / "results.json"
    cmd = [sys.executable, str(SCRIPT), "--variant", "252", "--width", "0.03125",
           # One trial per precision, at the cap: each trial is a fresh process that compiles
           # the model (~20 s of CPU); the doubling and bisection are tested above with a fake.
           "--max-batch", "2", "--start-batch", "2", "--steps", "1",
           "--precisions", "float32,mixed_bfloat16",
           "--json", str(json_path)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield proc, json_path
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def _fake_trial(limit, calls):
    def trial(batch):
        calls.append(batch)
        return batch <= limit
    return trial


@pytest.mark.parametrize("limit", [1, 2, 3, 13, 16, 17, 63])
def test_largest_batch_finds_limit_in_log_trials(smoke, limit):
    calls = []
    best, capped, tried = mb.largest_batch(_fake_trial(limit, calls), max_batch=64)
    assert best == limit and not capped
    assert len(calls) == len(set(calls)) == len(tried)          # no batch tried twice
    assert len(calls) <= 2 * math.ceil(math.log2(limit + 1)) + 1


def test_largest_batch_13():
    calls = []
    best, capped, tried = mb.largest_batch(_fake_trial(13, calls), max_batch=64)
    assert best == 13 and not capped
    assert calls == [1, 2, 4, 8, 16, 12, 14, 13]
    assert tried[-1] == (13, True) and (14, False) in tried


def test_largest_batch_cap_and_failures():
    calls = []
    assert mb.largest_batch(_fake_trial(1000, calls), max_batch=48)[:2] == (48, True)
    assert calls == [1, 2, 4, 8, 16, 32, 48]                    # the last doubling is clipped
    assert mb.largest_batch(_fake_trial(0, []), max_batch=64)[:2] == (None, False)
    # Starting above the limit bisects down; starting below it doubles up from there.
    calls = []
    assert mb.largest_batch(_fake_trial(5, calls), max_batch=64, start=8)[0] == 5
    assert calls == [8, 4, 6, 5]
    calls = []
    assert mb.largest_batch(_fake_trial(13, calls), max_batch=64, start=8)[0] == 13
    assert calls == [8, 16, 12, 14, 13]
    with pytest.raises(ValueError):
        mb.largest_batch(_fake_trial(1, []), max_batch=0)


def test_markdown_table_marks_cap_and_ratios():
    def row(p, b, capped, ips):
        at = {"images_per_s": ips, "step_s": b / ips, "peak_bytes": 3 * 2**30}
        return {"precision": p, "largest_batch": b, "capped": capped, "tried": [[b, "ok"]],
                "at_largest": at, "first_failure": {"batch": b + 1, "status": "oom"}}
    table = mb.markdown_table([row("float32", 4, False, 10.0),
                               row("mixed_bfloat16", 8, False, 25.0)])
    lines = table.splitlines()
    assert "| float32 | 4 | 10.00 |" in lines[2] and "| 3.00 |" in lines[2]
    assert "| 2.00x | 2.50x |" in lines[3] and "| 9: oom |" in lines[3]
    assert ">= 4 (cap)" in mb.markdown_table([row("float32", 4, True, 10.0)])


def test_search_precision_records_failures(monkeypatch):
    """The parent's plumbing, with fake subprocess results: OOM above 5, a crash at 8."""
    seen = []

    def fake_spawn(spec, timeout, env=None):
        seen.append((spec["precision"], spec["batch"]))
        b = spec["batch"]
        if b == 8:
            return {**spec, "status": "crash", "message": "exit code -9", "wall_s": 1.0}
        if b > 5:
            return {**spec, "status": "oom", "message": "RESOURCE_EXHAUSTED", "wall_s": 1.0}
        return {**spec, "status": "ok", "step_s": 0.1 * b, "images_per_s": 10.0,
                "peak_bytes": b * 2**30, "wall_s": 1.0}

    monkeypatch.setattr(mb, "spawn_trial", fake_spawn)
    args = mb.parse_args(["--max-batch", "64"])
    row = mb.search_precision(args, "float32", 1, {}, log=lambda msg: None)
    assert row["largest_batch"] == 5 and not row["capped"]
    assert row["tried"] == [[1, "ok"], [2, "ok"], [4, "ok"], [8, "crash"], [6, "oom"],
                            [5, "ok"]]
    assert row["first_failure"]["batch"] == 6 and row["at_largest"]["peak_bytes"] == 5 * 2**30
    line = mb.markdown_table([row]).splitlines()[2]
    assert "| float32 | 5 | 10.00 | 0.500 | 5.00 | 6: oom | 1.00x | 1.00x |" in line


def test_cpu_smoke_run(smoke):
    proc, json_path = smoke
    try:
        out, err = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"benchmark timed out:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    assert "backend jax" in out and "keras " in out and "device cpu" in out.lower(), out
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\| (float32|mixed_bfloat16) \| ([^|]+) \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip())
    assert set(rows) == {"float32", "mixed_bfloat16"}, out
    for precision, (batch, images_per_s) in rows.items():
        assert re.fullmatch(r"(>= )?[12]( \(cap\))?", batch), (precision, batch)
        assert math.isfinite(float(images_per_s)) and float(images_per_s) > 0
    import json
    results = json.loads(json_path.read_text())["results"]
    for r in results:
        assert r["largest_batch"] == 2 and r["capped"]         # no OOM on the CPU: the cap
        assert r["tried"] == [[2, "ok"]]
        assert r["at_largest"]["status"] == "ok" and r["at_largest"]["finite_loss"]
        assert r["at_largest"]["peak_bytes"] is None            # no device statistics on CPU
