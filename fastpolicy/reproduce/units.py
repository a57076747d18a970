"""A study's unit of work, resumable: one training whose row is saved in its folder when it ends.

:func:`finished_row` reads a finished unit's row back (a rerun of the study reuses it);
:func:`save_row` writes it, stamped with the commit that computed it (:func:`.record.git_state`),
so a record can say whether all of its runs came from one commit. :func:`train_error` is the
clean training error every study reports beside the test error.
"""

from __future__ import annotations

import json
import os

from .. import atomic
from ..data import fashion_mnist
from ..train import loop
from ..train.data import _array_loaders, balanced_subset
from . import record

ROW = "study.json"
"""A finished unit's row, in its run folder."""


def finished_row(folder: str) -> dict | None:
    """The row of the unit in ``folder`` if it finished (``study.json``), else None."""
    path = os.path.join(folder, ROW)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_row(folder: str, row: dict) -> dict:
    """``row`` with ``commit`` (this checkout's :func:`.record.git_state`) written as ``folder/study.json``."""
    row = row | {"commit": record.git_state()}
    atomic.write_json(os.path.join(folder, ROW), row)
    return row


def train_error(model, device, subset: int, seed: int, threads: int) -> float:
    """Percent error of ``model`` on its own training images, without augmentation: the class-balanced
    Fashion-MNIST subset of ``subset`` images drawn with ``seed`` (the studies' training set)."""
    images, labels = fashion_mnist.load("train")
    chosen = balanced_subset(labels, subset, seed)
    train = (images[chosen], labels[chosen])
    _, clean, _, _ = _array_loaders(train, train, min(256, subset), 1, "cpu", seed, threads, None)
    return 100 * (1 - loop.evaluate(model, clean, device, progress=False)["accuracy"])


def commits(rows) -> list[dict]:
    """The distinct ``commit`` stamps of ``rows`` (each ``{"commit", "clean"}``; rows without one
    are left out), in first-seen order."""
    seen: list[dict] = []
    for row in rows:
        stamp = row.get("commit")
        if stamp is not None and stamp not in seen:
            seen.append(stamp)
    return seen


def describe_commits(stamps: list[dict]) -> str:
    """``"0324059a1b, 5e6f… (tree not clean)"``: :func:`commits`' stamps for a table."""

    def one(stamp: dict) -> str:
        if stamp.get("commit") is None:
            return "unknown (not a git checkout)"
        return f"{stamp['commit'][:10]}{'' if stamp.get('clean') else ' (tree not clean)'}"

    return ", ".join(one(s) for s in stamps) or "none"


__all__ = ["ROW", "commits", "describe_commits", "finished_row", "save_row", "train_error"]
