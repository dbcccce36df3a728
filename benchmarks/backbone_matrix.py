"""Every backbone in every family at full size: build, one training step, .keras save/reload.

For each backbone of ``kerasmed.models.encoders.BACKBONES`` and each of Unet, FPN, Linknet and
PSPNet (random encoder weights, one sigmoid class), this builds the model at 256x256x3 (PSPNet
at 288x288x3, the nearest size its rule allows: a multiple of 6 * downsample_factor = 48),
trains one step (SGD, batch 1, eager, to keep memory and time down on a CPU), saves it as
``.keras``, reloads it with ``keras.saving.load_model`` and checks that the predictions are
identical. One subprocess per backbone keeps memory flat. Results go to a CSV (one row per
model, appended as they finish, so an interrupted run resumes where it stopped).

    python benchmarks/backbone_matrix.py                       # everything -> backbone_matrix.csv
    python benchmarks/backbone_matrix.py --backbones vgg16,resnet50 --out /tmp/m.csv

At the end it prints the table of docs/models.md ("Every encoder in every family"): the
parameters of each model, with FAILED where a check did not pass.

This is the exhaustive check behind tests/test_models_backbones.py, which builds all 144
models at 96x96 (Inception 192x192; output shape and taps) and trains / saves / reloads one
family per backbone.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

FAMILIES = ("unet", "fpn", "linknet", "pspnet")
FIELDS = ("backbone", "family", "input", "params", "build_s", "train_step_s", "save_load_s",
          "loss", "max_abs_diff", "ok", "error")

_CHILD = r"""
import json, os, sys, tempfile, time
import numpy as np, keras
from kerasmed.models import FPN, Linknet, PSPNet, Unet
builders = {"unet": Unet, "fpn": FPN, "linknet": Linknet, "pspnet": PSPNet}
backbone, families = sys.argv[1], sys.argv[2].split(",")
for family in families:
    size = 288 if family == "pspnet" else 256
    row = {"backbone": backbone, "family": family, "input": f"{size}x{size}x3"}
    try:
        t = time.perf_counter()
        model = builders[family](backbone, input_shape=(size, size, 3), encoder_weights=None)
        row["build_s"] = round(time.perf_counter() - t, 1)
        row["params"] = model.count_params()
        rng = np.random.default_rng(0)
        x = rng.random((1, size, size, 3), dtype=np.float32)
        y = (rng.random((1, size, size, 1)) > 0.5).astype("float32")
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy",
                      run_eagerly=True)
        t = time.perf_counter()
        row["loss"] = round(float(model.train_on_batch(x, y)), 4)
        row["train_step_s"] = round(time.perf_counter() - t, 1)
        expected = model.predict_on_batch(x)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path)
            got = loaded.predict_on_batch(x)
        row["save_load_s"] = round(time.perf_counter() - t, 1)
        row["max_abs_diff"] = float(np.abs(got - expected).max())
        row["ok"] = bool(got.shape == (1, size, size, 1) and row["max_abs_diff"] == 0.0
                         and np.isfinite(row["loss"]))
        del loaded
    except Exception as err:  # report and go on with the next family
        row["ok"] = False
        row["error"] = f"{type(err).__name__}: {err}"[:300]
    print("ROW" + json.dumps(row), flush=True)
    keras.backend.clear_session()
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="", help="comma-separated; default: all")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--out", default="backbone_matrix.csv")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from kerasmed.models.encoders import list_backbones

    backbones = [b for b in args.backbones.split(",") if b] or list_backbones()
    families = [f for f in args.families.split(",") if f]
    done = set()
    if os.path.exists(args.out):
        with open(args.out, newline="") as f:
            done = {(r["backbone"], r["family"]) for r in csv.DictReader(f)}
    new_file = not os.path.exists(args.out)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(args.out, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new_file:
            writer.writeheader()
        for backbone in backbones:
            todo = [fam for fam in families if (backbone, fam) not in done]
            if not todo:
                continue
            start = time.perf_counter()
            child = subprocess.run([sys.executable, "-c", _CHILD, backbone, ",".join(todo)],
                                   capture_output=True, text=True, env=env)
            rows = [json.loads(line[3:]) for line in child.stdout.splitlines()
                    if line.startswith("ROW")]
            seen = {r["family"] for r in rows}
            for fam in todo:
                if fam not in seen:  # the child died (e.g. out of memory)
                    rows.append({"backbone": backbone, "family": fam, "ok": False,
                                 "error": f"exit {child.returncode}: {child.stderr[-200:]}"})
            for row in rows:
                writer.writerow(row)
                print(json.dumps(row), flush=True)
            f.flush()
            print(f"# {backbone}: {time.perf_counter() - start:.0f} s", flush=True)
    with open(args.out, newline="") as f:
        print(markdown_table(list(csv.DictReader(f)), backbones, families))
    return 0


def markdown_table(rows, backbones, families):
    """The parameter counts of ``rows`` (CSV rows), a backbone a line, a family a column."""
    cells = {(r["backbone"], r["family"]): r for r in rows}
    titles = {"unet": "`backbone_unet`", "pspnet": "`pspnet` (288x288)"}
    lines = ["| backbone | " + " | ".join(titles.get(f, f"`{f}`") for f in families) + " |",
             "|---|" + "---:|" * len(families)]
    for backbone in backbones:
        row = []
        for family in families:
            cell = cells.get((backbone, family))
            if cell is None:
                row.append("")
            elif str(cell["ok"]) != "True":
                row.append(f"FAILED ({cell.get('error') or 'check'})"[:80])
            else:
                row.append(f"{int(cell['params']):,}")
        lines.append(f"| {backbone} | " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
