"""``python -m kerasmed.cli``: ``kerasmed-train``."""

import sys

from kerasmed.cli.train import train_main

sys.exit(train_main())
