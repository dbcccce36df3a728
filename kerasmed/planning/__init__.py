"""Self-configuring experiments: from a dataset's fingerprint to a planned experiment file.

- ``rules``: each decision (fit, patch, topology, normalisation, batch, loss, optimiser,
  augmentation, cache) from a few fingerprint figures, with its reason; the constants behind
  them, each with its source;
- ``probe``: what a candidate network costs on this machine, measured;
- ``planner``: ``plan_experiment``, which puts them together within a time budget and writes
  ``fingerprint.json``, ``plan.json`` and ``experiment.json``.

The layer sits above ``kerasmed.experiment`` (its output is an experiment) and below the CLI.
"""

from kerasmed.planning.planner import PLAN_FILES, Plan, plan_experiment, plan_from_fingerprint
from kerasmed.planning.rules import Decision, PlanError

__all__ = ["Plan", "plan_experiment", "plan_from_fingerprint", "PLAN_FILES", "Decision",
           "PlanError"]
