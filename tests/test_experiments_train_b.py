"""Each network trains from its experiment file, in tiny form (every other file, from the second;
the two halves run on different test workers)."""

import pytest

from _experiment_files import TRAINED, cvc, train_tiny  # noqa: F401


@pytest.mark.parametrize("path", TRAINED[1::2], ids=lambda p: p.stem)
def test_each_network_trains_from_its_experiment_file(path, cvc, tmp_path):  # noqa: F811
    summary = train_tiny(path, cvc, tmp_path)
    assert summary["status"] == "completed" and summary["best"] is not None
