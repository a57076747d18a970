"""Check an ImageNet recipe before spending a cluster: its whole pipeline on a tiny generated tree.

``dry_run(preset, search)`` writes an ImageNet-layout tree (``train/`` and ``val/``, JPEG
crops of real photos at ~500×375) and runs the preset's command on it for one short epoch
with everything else of the preset — model, image size, M, optimizer, schedule, DALI file
reading, the policy stage, checkpoints, logs and plots — only N scaled down to the tree.
``search``: ``"adversarial"`` (Adversarial AutoAugment), ``"aws"`` (both stages, one loop)
or ``"train"`` (final training with a uniform AWS distribution as the policy file).
Under ``torchrun`` it checks the distributed setup too.

It ends with a :class:`Verdict` read from the run's CSV logs: ``OK`` when every logged loss
is finite and below :data:`EXPLODING` times the chance level, else ``diverged`` and why
(which loss, at which epoch or loop, non-finite or exploding, or how many steps were skipped
for a non-finite loss).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..data.photo_tree import make_photo_tree
from ..distribution import AWSDistribution
from ..log import get as get_logger
from ..train import distributed
from ..train.presets import get_preset

log = get_logger(__name__)

EXPLODING = 10.0
"""A cross-entropy above ``EXPLODING × ln(classes)`` (the loss of a uniform guess) has blown up.
An untrained network starts near ln(classes) (1.39 nats on the dry run's 4 classes); ImageNet's
lr 0.8 at batch 4 gave a training loss of 97 and a val_loss of 3e11 there."""

CROSS_ENTROPIES = ("train_loss", "val_loss")
"""The logged losses that are the network's cross-entropy, in nats, held against :data:`EXPLODING`
(every other ``…loss`` column, e.g. the controller's REINFORCE loss, is only checked to be finite)."""

LOGS = (("stage1.csv", "stage 1 "), ("metrics.csv", ""))
"""The CSV logs a dry run's losses are read from, in run order, and how their rows are named."""


@dataclass(frozen=True)
class Verdict:
    """How a dry run ended: ``ok`` (finite, sane losses) or not, and ``reason`` in words."""

    ok: bool
    reason: str

    def __str__(self) -> str:
        return ("OK: " if self.ok else "diverged: ") + self.reason


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def verdict(rows: Iterable[tuple[str, dict]], classes: int) -> Verdict:
    """Judge a run by its logged rows.

    Args:
        rows: ``(where, row)`` in run order, ``where`` naming the row (``"epoch 0"``,
            ``"loop 3"``); every key containing ``loss`` is a loss (numbers or numeric strings,
            as a CSV holds them), :data:`CROSS_ENTROPIES` are in nats; ``skipped_steps`` counts
            steps skipped for a non-finite loss.
        classes: the number of classes (the chance level is ln(classes)).

    Returns:
        The first problem in run order — a non-finite loss, a cross-entropy above ``EXPLODING ×
        ln(classes)``, skipped steps — as a diverged :class:`Verdict`; else OK.

    Raises:
        ValueError: ``classes`` < 2, or no row has a loss (nothing to judge).
    """
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise ValueError(f"classes must be an integer ≥ 2, got {classes!r}")
    limit = EXPLODING * math.log(classes)
    seen, last = 0, ""
    for where, row in rows:
        for key, raw in row.items():
            value = _number(raw)
            if "loss" not in key or value is None:
                continue
            seen += 1
            if not math.isfinite(value):
                return Verdict(False, f"{key} is {value} at {where} (non-finite)")
            if key in CROSS_ENTROPIES and value > limit:
                return Verdict(
                    False,
                    f"{key} is {value:.3g} at {where} (exploding: above {EXPLODING:g} × ln({classes}) = {limit:.3g}, "
                    f"the chance level times {EXPLODING:g})",
                )
            if key in CROSS_ENTROPIES:
                last = f"last {key} {value:.3g} at {where}"
        skipped = _number(row.get("skipped_steps"))
        if skipped:
            return Verdict(False, f"{skipped:g} training step(s) had a non-finite loss at {where} and were skipped")
    if not seen:
        raise ValueError("no logged row has a loss: nothing to judge")
    return Verdict(True, f"{seen} logged losses, all finite, cross-entropies below {limit:.3g} nats ({last})")


def logged_rows(folder: str) -> list[tuple[str, dict]]:
    """``(where, row)`` of a run folder's CSV logs (:data:`LOGS`) in run order; ``where`` is
    ``"epoch N"`` / ``"loop N"`` (``"stage 1 epoch N"`` for AWS's stage 1)."""
    rows = []
    for name, prefix in LOGS:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, newline="", encoding="utf-8") as handle:
            for i, row in enumerate(csv.DictReader(handle)):
                unit = "loop" if "loop" in row else "epoch"
                rows.append((f"{prefix}{unit} {row.get(unit, i)}", row))
    return rows


def judge(folder: str, classes: int) -> Verdict:
    """The :class:`Verdict` of the run in ``folder`` (its CSV logs), logged as the run's last line."""
    result = verdict(logged_rows(folder), classes)
    (log.info if result.ok else log.warning)(f"fastpolicy: dry run verdict: {result}")
    return result


def make_tree(root: str, classes: int = 4, train_per_class: int = 8, val_per_class: int = 2) -> str:
    """``root/train/class<i>/`` and ``root/val/class<i>/`` JPEGs (skipped if already there)."""
    if not os.path.isdir(os.path.join(root, "val")):
        make_photo_tree(os.path.join(root, "train"), classes, train_per_class, seed=0)
        make_photo_tree(os.path.join(root, "val"), classes, val_per_class, seed=1)
    return root


def dry_run(
    preset: str,
    search: str = "adversarial",
    out: str = "runs/dry-run",
    batch: int = 4,
    M: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Run ``search`` with ``preset`` on a generated tree for one epoch of ``batch`` (global N), in
    ``<out>/<search>`` (a dry run there before is replaced);
    ``M`` overrides the preset's (None: keep it). Returns the run's last logged row, with
    ``"verdict"``: the run's :class:`Verdict` as a line (``"OK: …"`` or ``"diverged: …"``; rank 0
    of a distributed run only)."""
    recipe = get_preset(preset)
    if search not in ("adversarial", "aws", "train"):
        raise ValueError(f"search must be 'adversarial', 'aws' or 'train', got {search!r}")
    tree = make_tree(os.path.join(out, "tree"))
    classes = len(os.listdir(os.path.join(tree, "train")))
    common: dict[str, Any] = dict(preset=preset, data=tree, batch=batch, device=device, progress=progress)
    log.info(
        f"fastpolicy: dry run of {preset} ({recipe.model}, {recipe.image_size}², M={M or recipe.M}) with "
        f"'{search}' on {tree}"
    )
    folder = os.path.join(out, search)
    row: dict
    if search == "adversarial":
        from ..train.adversarial import AdversarialConfig, AdversarialSearch

        row = AdversarialSearch(AdversarialConfig(out=folder, epochs=1, M=M, **common), overwrite=True).run()
    elif search == "aws":
        from ..train.aws import AWSConfig, AWSSearch

        config = AWSConfig(out=folder, stage1_epochs=1, loops=1, finetune_epochs=1, val_count=8, **common)
        search_run = AWSSearch(config, overwrite=True)
        search_run.run()
        row = search_run.history[-1]
    else:
        from ..train.final import FinalTraining, TrainConfig

        policy = AWSDistribution().save(os.path.join(out, "uniform_policy.json"))
        row = FinalTraining(
            TrainConfig(out=folder, policy=str(policy), epochs=1, M=M or 4, **common), overwrite=True
        ).run()
    if not distributed.is_main():
        return row  # the verdict reads the logs, which rank 0 alone writes
    return {**row, "verdict": str(judge(folder, classes))}


__all__ = ["CROSS_ENTROPIES", "EXPLODING", "Verdict", "dry_run", "judge", "logged_rows", "make_tree", "verdict"]
