import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from kerasmed.cli import train_main  # noqa: E402


@pytest.fixture
def write_config(tmp_path):
    """Write an experiment dict to ``tmp_path/<name>.json`` and return the path."""

    def write(config, name="experiment"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    return write


def _tiny(root, epochs=2):
    """A quickstart-shaped experiment small enough to train in seconds, its generated data
    under ``root``."""
    return {
        "name": "tiny",
        "seed": 3,
        "model": {"name": "unet", "params": {"filters": 4, "depth": 2}},
        "data": {
            "dataset": "synthetic_polyps",
            "root": str(root),
            "synthetic": {"n_images": 16, "height": 48, "width": 64, "seed": 0},
            "image_size": [32, 32],
            "val_fraction": 0.25,
        },
        "training": {"epochs": epochs, "batch_size": 4, "loss": "bce_dice",
                     "metrics": ["dice", "iou"], "verbose": 0},
    }


@pytest.fixture
def tiny_experiment(tmp_path):
    """The tiny experiment (2 epochs), its data in this test's folder."""
    return _tiny(tmp_path / "synthetic")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """One end-to-end CLI run of a tiny experiment, shared by the checks below."""
    tmp = tmp_path_factory.mktemp("cli")
    config = _tiny(tmp / "synthetic", epochs=3)
    path = tmp / "tiny.json"
    path.write_text(json.dumps(config))
    out = tmp / "runs"
    assert train_main([str(path), "--output", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir, path, out, config


def pytest_collection_modifyitems(session, config, items):
    """Start the PyTorch-backend subprocess as soon as its test is selected, so that it runs
    beside the other tests (see tests/test_backend_torch.py). Under pytest-xdist every worker
    collects every test, so there the module starts it itself when its test runs."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.endswith("test_backend_torch"):
            module.start_early()
            break
