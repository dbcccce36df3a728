"""Command-line entry points, one module each: ``kerasmed-train`` (``train``), ``kerasmed-eval``
(``evaluate``), ``kerasmed-predict``, ``kerasmed-compare``, ``kerasmed-tune``,
``kerasmed-explain``, ``kerasmed-export`` and ``kerasmed-plan``; what they share is in
``_common``. Each command imports Keras only after parsing its arguments, so ``--help``
answers at once.
``python -m kerasmed.cli`` is ``kerasmed-train``."""

from kerasmed.cli._common import EXIT_CODES
from kerasmed.cli.compare import compare_main
from kerasmed.cli.evaluate import eval_main
from kerasmed.cli.explain import explain_main
from kerasmed.cli.export import export_main
from kerasmed.cli.plan import plan_main
from kerasmed.cli.predict import predict_main
from kerasmed.cli.train import train_main
from kerasmed.cli.tune import tune_main

__all__ = ["train_main", "eval_main", "predict_main", "compare_main", "tune_main",
           "explain_main", "export_main", "plan_main", "EXIT_CODES"]
