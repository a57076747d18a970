"""A fixed-seed Adversarial AutoAugment search gives the recorded results (``golden_adversarial.json``):
every logged number of both epochs, and the learned schedule, policy for policy. Refactors of the
loader, the backends and the runner must not change what a search computes.

The record was taken from commit f8f1bf3 (before the issue-24 redesign) and held through it; it was
re-taken once, when the models went channels-last on the CPU (the convolutions sum in another
order: the same schedule, logged floats within 2 %). See its ``recorded_with``. Its command names
``--fill 128``, the fill it was recorded with, since Fashion-MNIST's default fill became 0."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("golden_adversarial.json")


CONTROLLER_TOLERANCE = {"rel_tol": 0.05, "abs_tol": 1e-3}
"""The controller's logged figures (its loss, its KL from its start) on another CPU: its LSTM runs
another vector path (seen: AVX-512 against the recording's machine), and a REINFORCE loss of
normalized rewards amplifies the rewards' last digits (0.0301 against 0.0294 with every training
loss equal to 1e-6). Its sampled policies, the schedule below, stay exact."""


FLOAT_TOLERANCE = {"rel_tol": 1e-4, "abs_tol": 1e-9}
"""Every other logged float: another CPU's convolutions sum in another order (seen: 1e-5 relative
by the second epoch on an AVX-512 machine, where the recording's matched to 1e-6)."""


def _close(got: str, want: str, column: str = "") -> bool:
    """CSV cells: the same text, or floats within :data:`FLOAT_TOLERANCE` (the augmentation
    parameters themselves are exact: the schedule is compared as is); the controller's columns
    within :data:`CONTROLLER_TOLERANCE`."""
    if got == want:
        return True
    tolerance = CONTROLLER_TOLERANCE if column.startswith("controller_") else FLOAT_TOLERANCE
    try:
        return math.isclose(float(got), float(want), **tolerance)
    except ValueError:
        return False


@pytest.mark.slow
def test_a_fixed_seed_search_equals_the_recorded_one(tmp_path, capsys):
    from fastpolicy.cli import main

    golden = json.loads(GOLDEN.read_text())
    argv = [*golden["command"].split()[1:], "--out", str(tmp_path / "run")]
    assert "-q" in argv
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "run")  # -q: the run folder alone
    with open(tmp_path / "run" / "metrics.csv") as handle:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]
    assert len(rows) == len(golden["metrics"]) == 2
    for got, want in zip(rows, golden["metrics"], strict=True):
        assert set(got) == set(want)
        different = {k: (got[k], want[k]) for k in want if not _close(got[k], want[k], k)}
        assert not different, different
    schedule = json.loads((tmp_path / "run" / "schedule.json").read_text())
    assert schedule["epochs"] == golden["schedule"]["epochs"]
