"""The loader benchmark (benchmarks/loader.py) runs and prints its table."""

import importlib.util
import io
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


def test_loader_benchmark_runs(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "loader.py"
    spec = importlib.util.spec_from_file_location("loader_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    rows = module.run(images=8, epochs=1, batch_size=4, size=64, data=tmp_path / "d", out=out)
    text = out.getvalue()
    assert "| naive (seed-style)" in text and "vs naive" in text and "1.00x" in text
    assert [r[1] for r in rows] == ["1", "1", "2", "2"] and all(r[3] > 0 for r in rows)
