"""Logging: the library logs to ``logging.getLogger("fastpolicy…")``; the command line shows it.

The library never prints: progress (epochs, loops, where results went) is ``INFO``, what a
user should notice (ignored files, a skipped update) ``WARNING``. Used as a library,
Python's default shows warnings only; :func:`setup` (what ``fastpolicy`` calls) prints
``INFO`` and up on standard output — ``-v`` adds ``DEBUG``, ``-q`` keeps warnings and
errors — on rank 0 only under ``torchrun`` (other ranks: errors only).

Progress bars (tqdm) go to standard error: only when it is a terminal (a piped log gets the
one line per epoch instead), never with ``-q`` or on ranks other than 0 (:func:`bars_disabled`).
"""

from __future__ import annotations

import logging
import sys

LOGGER = "fastpolicy"
_HANDLER_NAME = "fastpolicy-cli"
_bars = {"shown": True}  # False after setup(-q), or on a rank other than 0


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever ``sys.stdout`` is when a record comes (it may be replaced)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup(verbosity: int = 0, rank: int = 0) -> logging.Logger:
    """Show fastpolicy's log on standard output: ``verbosity`` −1 (``-q``: warnings), 0 (info)
    or 1 (``-v``: debug); a ``rank`` other than 0 shows errors only. Idempotent."""
    logger = logging.getLogger(LOGGER)
    _bars["shown"] = verbosity >= 0 and rank == 0
    level = {-1: logging.WARNING, 0: logging.INFO}.get(max(-1, min(verbosity, 1)), logging.DEBUG)
    logger.setLevel(level if rank == 0 else logging.ERROR)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = _Stdout()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def bars_disabled(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a bar a run asked for with ``progress``: True (no bar) without it,
    after ``-q`` or on a rank other than 0; else None (tqdm: a bar only if stderr is a terminal)."""
    return None if progress and _bars["shown"] else True


def get(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), under ``fastpolicy``."""
    return logging.getLogger(name if name.startswith(LOGGER) else f"{LOGGER}.{name}")
