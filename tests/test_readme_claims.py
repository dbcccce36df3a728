"""The README's claims that a test can check: every registered network has an experiment file
(or is a named exception), every schema key is in the key table, the models table's parameter
counts are what ``default_config`` builds, sizes are written ``[height, width]`` and the
outputs table lists every file a run writes."""

import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasmed.experiment.schema import SCHEMA
from kerasmed.models import build, default_config, get_spec
from kerasmed.models import list_models as _all_models

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title):
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def _table_rows(section):
    """The body rows of the tables in ``section``, as lists of cells."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in section.splitlines() if line.startswith("| ")]
    return [r for r in rows if not set(r[0]) <= set("-| ")]


def list_models():
    """kerasmed's own networks: not those other tests register in the same process."""
    return [n for n in _all_models()
            if get_spec(n).builder.__module__.startswith("kerasmed.")]


def test_every_network_has_an_experiment_file_or_is_named_an_exception():
    sentence = re.search(r"Every network has an experiment file in `experiments/`, but for"
                         r"(.*?)\.(\s|$)", README, re.S)
    assert sentence, "the README's claim about experiment files moved or changed"
    exceptions = set(re.findall(r"`([a-z0-9_]+)`", sentence.group(1)))
    used = {json.loads(p.read_text())["model"]["name"]
            for p in (ROOT / "experiments").glob("*.json")}
    assert not exceptions & used, "an exception that has an experiment file after all"
    assert sorted(set(list_models()) - used - exceptions) == []


def _schema_keys(section, prefix=""):
    for key, value in section.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _schema_keys(value, f"{prefix}{key}.")


def test_every_schema_key_is_in_the_key_table():
    listed = {key for row in _table_rows(_section("Experiment files"))
              for key in re.findall(r"`([a-z_.]+)`", row[0])}
    # A section listed as a whole (data.synthetic) covers its keys.
    missing = [key for key in _schema_keys(SCHEMA)
               if key not in listed and not any(key.startswith(f"{s}.") for s in listed)
               and not isinstance(_lookup(key), dict)]
    assert missing == []
    assert sorted(k for k in listed if k not in set(_schema_keys(SCHEMA))) == []


def _lookup(dotted):
    node = SCHEMA
    for part in dotted.split("."):
        node = node[part]
    return node


def _models_rows():
    rows = {}
    for cells in _table_rows(_section("Models")):
        names = re.findall(r"`([a-z0-9_]+)`", cells[0])
        if cells[0].startswith("`") and len(names) >= 1:
            rows[tuple(names)] = cells
    return rows


def test_the_models_table_names_every_network():
    named = {name for names in _models_rows() for name in names}
    assert sorted(set(list_models()) - named) == []


COUNTED = sorted(names[0] for names, cells in _models_rows().items()
                 if len(names) == 1 and re.match(r"\d[\d,]*", cells[2]))


def test_the_models_table_counts_every_single_network_row():
    # Only the families on keras.applications encoders refer to docs/models.md instead.
    assert sorted(set(list_models()) - set(COUNTED)) == sorted(
        ["backbone_unet", "fpn", "linknet", "pspnet", "backbone_unet_plus_plus",
         "deeplabv3plus"])


@pytest.mark.parametrize("name", COUNTED)
def test_the_models_table_counts_are_what_default_config_builds(name):
    """The first figure of a row is ``build(name, **default_config(name))``'s parameter count
    (its trainable count where the figure says "trainable"). Built only, never trained."""
    (cells,) = [c for names, c in _models_rows().items() if names == (name,)]
    figure = re.match(r"(\d[\d,]*)( trainable| /[^;]* trainable)?", cells[2])
    stated = int(figure.group(1).replace(",", ""))
    config = default_config(name)
    if config.get("encoder_weights") is not None:
        config["encoder_weights"] = None  # the count does not depend on the weights' values
    keras.backend.clear_session()
    model = build(name, **config)
    if figure.group(2):
        count = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    else:
        count = model.count_params()
    del model
    keras.backend.clear_session()
    assert count == stated, f"{name}: default_config builds {count:,}, the README says {stated:,}"


def test_sizes_are_written_height_width():
    # Image sizes as "[height, width]" (or "[height, width, channels]"); "256x192" is
    # ambiguous. File and folder names (after "-" or "/") are names, not sizes.
    assert re.findall(r"(?<![-/\w])\d{2,}x\d{2,}(?:x\d+)?\b", README) == []


def test_the_outputs_table_lists_every_file_a_run_writes():
    from kerasmed.training import trainer

    listed = {re.sub(r"<[^>]+>", "*", name) for row in _table_rows(_section("Outputs of a run"))
              for name in re.findall(r"`([^`]+)`", row[0])}
    documented = re.findall(r"^    (\S+\.\w+)\s", trainer.__doc__, re.M)
    assert documented and sorted(set(documented) - listed) == []
