"""A fixed-seed Adversarial AutoAugment search gives the recorded results (``golden_adversarial.json``):
every logged number of both epochs, and the learned schedule, policy for policy. Refactors of the
loader, the backends and the runner must not change what a search computes.

The record was taken from commit f8f1bf3 (before the issue-24 redesign) and held through it; it was
re-taken once, when the models went channels-last on the CPU (the convolutions sum in another
order: the same schedule, logged floats within 2 %). See its ``recorded_with``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("golden_adversarial.json")


def _close(got: str, want: str) -> bool:
    """CSV cells: the same text, or floats equal to 1e-6 relative (another CPU may sum a conv
    in another order; the augmentation parameters themselves are exact)."""
    if got == want:
        return True
    try:
        return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
    except ValueError:
        return False


@pytest.mark.slow
def test_a_fixed_seed_search_equals_the_recorded_one(tmp_path):
    from fastpolicy.cli import main

    golden = json.loads(GOLDEN.read_text())
    argv = [*golden["command"].split()[1:], "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    with open(tmp_path / "run" / "metrics.csv") as handle:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    assert len(rows) == len(golden["metrics"]) == 2
    for got, want in zip(rows, golden["metrics"], strict=True):
        assert set(got) == set(want)
        different = {k: (got[k], want[k]) for k in want if not _close(got[k], want[k])}
        assert not different, different
    schedule = json.loads((tmp_path / "run" / "schedule.json").read_text())
    assert schedule["epochs"] == golden["schedule"]["epochs"]
