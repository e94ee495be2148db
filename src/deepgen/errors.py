"""User-facing errors.

Every error a user can cause (bad data, unknown names, corrupt checkpoints, a density the model does
not have) is a :class:`DeepgenError`. The command line prints its message as one line and exits with
status 2; Python callers can catch it. Anything else escaping is a bug in deepgen.
"""

from __future__ import annotations

import difflib


class DeepgenError(Exception):
    """An error caused by the user's input; the message is one line that says what to do."""

    exit_code = 2


class DataError(DeepgenError, ValueError):
    """Data that cannot be used: unreadable, empty, non-finite, wrong shape or out of range."""


class UnknownNameError(DeepgenError, KeyError):
    """A model, dataset or option name that does not exist; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid):
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NoDensityError(DeepgenError, NotImplementedError):
    """Raised when a model is asked for a density it does not define (e.g. log p(x) of a GAN)."""


class CheckpointError(DeepgenError):
    """A checkpoint that is missing, truncated, corrupt or not written by deepgen."""


class ConfigError(DeepgenError, ValueError):
    """A configuration value or file that does not fit the model or trainer."""


def shorten(text: str, width: int = 160) -> str:
    """``text`` on one line, at most ``width`` characters, cut between words with ``...``.

    Messages quoted from torch or numpy can be long; a hard ``[:N]`` slice cut them mid-word, which
    reads like a bug. A single word longer than ``width`` is still cut, inside the word.
    """
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = text[: width - 2]  # one more character than fits, so a cut right before a space is seen
    space = cut.rfind(" ")
    cut = cut[:space] if space > 0 else cut[: width - 3]
    return cut.rstrip(" ,;:(") + "..."
