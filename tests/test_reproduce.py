"""Reproductions: correlation arithmetic, the studies' smoke budgets end to end, the ImageNet dry run (CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("nvidia.dali")


def _cli(*args):
    """``fastpolicy ...`` (in this process)."""
    from fastpolicy.cli import main

    assert main([*args, "--no-progress"]) == 0


@pytest.mark.slow
def test_imagenet_dry_run_on_cpu(tmp_path):
    _cli(
        "reproduce",
        "dry-run",
        "--preset",
        "imagenet_resnet50",
        "--search",
        "adversarial",
        "--batch",
        "2",
        "--M",
        "2",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    )
    summary = json.loads((tmp_path / "adversarial" / "summary.json").read_text())
    row = summary["epochs"][-1]
    assert row["epoch"] == 0 and np.isfinite(row["train_loss"]) and len(row["reward"]) == 2
    assert summary["preset"]["model"] == "resnet50" and summary["preset"]["image_size"] == 224
    assert (tmp_path / "tree" / "train").is_dir() and (tmp_path / "tree" / "val").is_dir()
    from fastpolicy.reproduce.dry_run import EXPLODING, dry_run, judge

    # The run ends with a verdict read from its logs; it agrees with the summary's losses. With
    # the preset's lr scaled to batch 2 (linear rule) the run is sane, so the command exited 0.
    result = judge(str(tmp_path / "adversarial"), 4)
    assert all(np.isfinite(row[k]) and row[k] < EXPLODING * np.log(4) for k in ("train_loss", "val_loss"))
    assert result.ok and "loss" in result.reason

    with pytest.raises(ValueError, match="search must be"):
        dry_run("imagenet_resnet50", "other", str(tmp_path))
