"""Logging: the library logs to ``logging.getLogger("fastpolicy…")``; the command line shows it.

The library never prints: progress (epochs, loops, where results went) is ``INFO``, what a
user should notice (ignored files, a skipped update) ``WARNING``. Used as a library,
Python's default shows warnings only; :func:`setup` (what ``fastpolicy`` calls) prints
``INFO`` and up on standard output — ``-v`` adds ``DEBUG``, ``-q`` keeps warnings and
errors — on rank 0 only under ``torchrun`` (other ranks: errors only).
"""

from __future__ import annotations

import logging
import sys

LOGGER = "fastpolicy"
_HANDLER_NAME = "fastpolicy-cli"


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
    level = {-1: logging.WARNING, 0: logging.INFO}.get(max(-1, min(verbosity, 1)), logging.DEBUG)
    logger.setLevel(level if rank == 0 else logging.ERROR)
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        handler = _Stdout()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def get(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), under ``fastpolicy``."""
    return logging.getLogger(name if name.startswith(LOGGER) else f"{LOGGER}.{name}")
