"""Messages shared by every module: unknown names with the nearest valid choice suggested, and
kerasmed's own warning category.

This module sits at the bottom of kerasmed's layers (it imports nothing of kerasmed), so that
models, losses, metrics, data and the experiment schema all word a typo the same way.
"""

from __future__ import annotations

import difflib

__all__ = ["did_you_mean", "unknown_name_message", "KerasmedWarning"]


class KerasmedWarning(UserWarning):
    """A warning of kerasmed's own (a skipped sample, an unusual hyperparameter): the commands
    show these even when they silence third-party warnings."""


def did_you_mean(name, choices, cutoff: float = 0.6) -> str:
    """``" Did you mean 'x'?"`` for the choice nearest to ``name``, or ``""`` when none is near.

    ``choices`` may hold non-strings (they are compared as text and quoted as they are).
    """
    by_text = {str(c): c for c in choices}
    close = difflib.get_close_matches(str(name), list(by_text), n=1, cutoff=cutoff)
    return f" Did you mean {by_text[close[0]]!r}?" if close else ""


def unknown_name_message(kind: str, name, choices, *, list_choices: bool = True,
                         cutoff: float = 0.5) -> str:
    """``"unknown <kind> 'name'. Did you mean ...? Valid names: ..."``.

    Returns the message; ``list_choices=False`` leaves out the list of valid names.
    """
    message = f"unknown {kind} {name!r}.{did_you_mean(name, choices, cutoff)}"
    if list_choices:
        message += f" Valid names: {', '.join(sorted(map(str, choices)))}"
    return message
