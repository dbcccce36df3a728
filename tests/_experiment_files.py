"""Experiment files for the tests: the list, a CVC-ClinicDB look-alike, pointing a file at a
look-alike dataset, and the overrides that shrink it to a tiny training run. Shared by the
experiment test modules (split so that their trainings run on different test workers)."""

import json
from pathlib import Path

import pytest

from kerasmed.data.lookalike import (make_cvc_clinicdb, make_glas, make_monuseg, make_nuclei,
                                     make_oct2017)
from kerasmed.models import get_spec

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.json"))


@pytest.fixture(scope="module")
def cvc(tmp_path_factory):
    """A CVC-ClinicDB look-alike: the first two video sequences, 50 frames at 48x64."""
    root = tmp_path_factory.mktemp("cvc")
    make_cvc_clinicdb(root, frames=range(1, 51), height=48, width=64)
    return root


def _pointed_at(path, cvc, tmp_path):
    """The experiment with its dataset root moved to the look-alike (or a temp folder)."""
    config = json.loads(path.read_text())
    if config["data"]["dataset"] == "cvc_clinicdb":
        config["data"]["root"] = str(cvc)
    elif config["data"]["dataset"] == "oct2017":
        config["data"]["root"] = str(make_oct2017(tmp_path / "oct", per_class=2))
    elif config["data"]["dataset"] == "synthetic_polyps":
        config["data"]["root"] = str(tmp_path / "synthetic")
    elif config["data"]["dataset"] == "glas":
        config["data"]["root"] = str(make_glas(tmp_path / "glas", height=60, width=90))
    elif config["data"]["dataset"] == "monuseg":
        config["data"]["root"] = str(make_monuseg(tmp_path / "monuseg", train=6, test=1,
                                                  height=40, width=40))
    elif config["data"]["dataset"] == "folder":  # nuclei: images/ + masks/ instance labels
        config["data"]["root"] = str(make_nuclei(tmp_path / "nuclei", n=4, height=40, width=40))
    copy = tmp_path / path.name
    copy.write_text(json.dumps(config))
    return copy


def _tiny_overrides(config):
    """Shrink an experiment so it trains in seconds on a CPU: few filters, 32x32, one epoch."""
    spec = get_spec(config["model"]["name"])
    # No XLA: compiling a large graph once costs a CPU more than the step it speeds up.
    overrides = ["training.epochs=1", "training.batch_size=2", 'training.precision="float32"',
                 "data.val_fraction=0.5", "training.jit_compile=false"]
    if spec.name == "micronet":  # valid convolutions: Micro-Net takes exactly 252 or 508
        overrides += ["data.image_size=[252,252]", "model.params.variant=252",
                      "model.params.width=0.03125"]
    else:  # PSPNet: a multiple of 6 x downsample_factor (8)
        overrides.append("data.image_size=[48,48]" if spec.name == "pspnet"
                         else "data.image_size=[32,32]")
    for key, value in (("filters", "4"), ("depth", "2"), ("encoder_weights", "null")):
        if key in spec.parameters():  # no ImageNet download in tests
            overrides.append(f"model.params.{key}={value}")
    # Networks whose smallest useful form is still large: a tiny form of each.
    overrides += [f"model.params.{key}={value}" for key, value in _TINY.get(spec.name, ())]
    return overrides


_TINY = {
    "transunet": (("encoder", '"cnn"'), ("hidden_size", "16"), ("num_layers", "1"),
                  ("num_heads", "2"), ("mlp_dim", "32"), ("decoder_filters", "[16,8,8,4]"),
                  ("decoder_conv_filters", "16")),
    "swin_unet": (("blocks", "1"), ("drop_path_rate", "0")),
    "backbone_unet_plus_plus": (("backbone_name", '"mobilenetv3small"'),),
    "deeplabv3plus": (("backbone_name", '"mobilenetv3small"'),),
    **{name: (("backbone_name", '"mobilenetv3small"'),) for name in ("fpn", "linknet", "pspnet")},
}



TRAINED = [p for p in EXPERIMENTS if p.stem.startswith("cvc_") and p.stem != "cvc_resnet50"
           or p.stem == "oct_ran_small"]


def train_tiny(path, cvc, tmp_path):
    """Train the tiny form of the experiment file ``path``; returns its summary."""
    from kerasmed.cli import train_main

    copy = _pointed_at(path, cvc, tmp_path)
    args = [str(copy), "--output", str(tmp_path / "runs")]
    for o in _tiny_overrides(json.loads(copy.read_text())):
        args += ["--set", o]
    assert train_main(args) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return json.loads((run_dir / "summary.json").read_text())
