"""Check an ImageNet recipe before spending a cluster: its whole pipeline on a tiny generated tree.

``dry_run(preset, search)`` writes an ImageNet-layout tree (``train/`` and ``val/``, JPEG
crops of real photos at ~500×375) and runs the preset's command on it for one short epoch
with everything else of the preset — model, image size, M, optimizer, schedule, DALI file
reading, the policy stage, checkpoints, logs and plots — only N scaled down to the tree.
``search``: ``"adversarial"`` (Adversarial AutoAugment), ``"aws"`` (both stages, one loop)
or ``"train"`` (final training with a uniform AWS distribution as the policy file).
Under ``torchrun`` it checks the distributed setup too.
"""

from __future__ import annotations

import os
from typing import Any

from ..data.photo_tree import make_photo_tree
from ..distribution import AWSDistribution
from ..log import get as get_logger
from ..train.presets import get_preset

log = get_logger(__name__)


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
    ``M`` overrides the preset's (None: keep it). Returns the run's last logged row."""
    recipe = get_preset(preset)
    tree = make_tree(os.path.join(out, "tree"))
    common: dict[str, Any] = dict(preset=preset, data=tree, batch=batch, device=device, progress=progress)
    log.info(
        f"fastpolicy: dry run of {preset} ({recipe.model}, {recipe.image_size}², M={M or recipe.M}) with "
        f"'{search}' on {tree}"
    )
    if search == "adversarial":
        from ..train.adversarial import AdversarialConfig, AdversarialSearch

        return AdversarialSearch(
            AdversarialConfig(out=os.path.join(out, search), epochs=1, M=M, **common), overwrite=True
        ).run()
    if search == "aws":
        from ..train.aws import AWSConfig, AWSSearch

        config = AWSConfig(
            out=os.path.join(out, search), stage1_epochs=1, loops=1, finetune_epochs=1, val_count=8, **common
        )
        search_run = AWSSearch(config, overwrite=True)
        search_run.run()
        return search_run.history[-1]
    if search == "train":
        from ..train.final import FinalTraining, TrainConfig

        policy = AWSDistribution().save(os.path.join(out, "uniform_policy.json"))
        return FinalTraining(
            TrainConfig(out=os.path.join(out, search), policy=str(policy), epochs=1, M=M or 4, **common), overwrite=True
        ).run()
    raise ValueError(f"search must be 'adversarial', 'aws' or 'train', got {search!r}")


__all__ = ["dry_run", "make_tree"]
