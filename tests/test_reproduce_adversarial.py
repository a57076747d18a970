"""The adversarial study (fastpolicy/reproduce/adversarial.py): its pre-registered gate, paired
analysis and verdict on hand-made runs, and the whole study at the smoke budget (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastpolicy.reproduce import adversarial as study

SEEDS = 6


def _rows(kl=(2.0,) * SEEDS, gap=(0.1,) * SEEDS, adversarial_error=16.0, null_kl=(0.1,) * SEEDS):
    """Six seeds × six arms; test error per arm (+ seed/10), the adversarial arm's final KL, its
    shuffled-reward null (20 draws around ``null_kl``) and its last-quarter training-loss gap over the
    frozen arm per seed."""
    errors = {"baseline": 18.0, "baseline_m": 17.2, "frozen": 17.0, "adversarial": adversarial_error,
              "trivialaugment": 16.5, "randaugment": 17.5}  # fmt: skip
    rows = []
    for s in range(SEEDS):
        for arm in study.ARMS:
            row = {
                "arm": arm,
                "seed": s,
                "test_error_percent": errors[arm] + s / 10 + (0.05 * s if arm == "adversarial" else 0),
                "train_error_percent": 1.0,
                "train_loss_by_epoch": [1.0, 0.5],
                "last_quarter_train_loss": 0.5 + (gap[s] if arm == "adversarial" else 0.0),
            }
            if arm in ("frozen", "adversarial"):
                row |= {
                    "controller_kl_from_start": kl[s] if arm == "adversarial" else 0.0,
                    "probed_updates": [0, 1],
                    "kl_by_probe": [0.0, kl[s]],
                    "mean_bin_by_probe": [4.5, 5.5],
                    "split_half_r_by_update": [0.2, 0.4],
                }
            if arm == "adversarial":
                row["null_kl"] = list(np.linspace(0.5 * null_kl[s], null_kl[s], 20))
            rows.append(row)
    return rows


def test_the_gate_passes_and_the_comparisons_are_results():
    record = study.analyse(_rows())
    assert record["gate"]["passed"] and record["gate"]["needed"] == 5
    d = record["differences"]["adversarial-frozen"]
    assert d["result"] and d["mean"] == pytest.approx(-1.0 + 0.125) and d["n"] == SEEDS
    assert d["t_ci95"][1] < 0 and d["sign_p"] == pytest.approx(2 / 64)
    assert record["verdict"].startswith("reproduced")
    assert set(record["verdicts"]) == {name for name, _ in study.QUESTIONS}
    assert record["verdicts"]["adversarial-baseline_m"].endswith("the enlarged batch alone does not explain it")
    assert record["mechanism"]["reward_split_half_r_mean_per_seed"] == pytest.approx([0.3] * SEEDS)
    assert record["mechanism"]["reward_reliability_spearman_brown"] == pytest.approx([0.6 / 1.3] * SEEDS)
    text = study.table(record)
    assert "**passed**" in text and "withheld" not in text
    for name, d in record["differences"].items():  # every statistic of every difference is in the table
        per_seed = ", ".join(f"{x:+.2f}" for x in d["per_seed"])
        assert f"| {name} | {d['mean']:+.2f} | {d['sd']:.2f} |" in text and per_seed in text


@pytest.mark.parametrize(
    "kl, gap, null_kl",
    [
        ((2.0, 2.0, 2.0, 2.0, 0.5, 0.5), (0.1,) * SEEDS, (0.1,) * SEEDS),  # KL ≥ 1 nat in only 4 of 6 seeds
        ((2.0,) * SEEDS, (0.1, 0.1, 0.1, 0.1, -0.1, 0.0), (0.1,) * SEEDS),  # the loss gap > 0 in only 4 of 6
        ((2.0,) * SEEDS, (0.1,) * SEEDS, (0.1, 0.1, 0.1, 0.1, 2.5, 3.0)),  # above the null in only 4 of 6
    ],
)
def test_a_failed_gate_withholds_every_adversarial_comparison(kl, gap, null_kl):
    record = study.analyse(_rows(kl, gap, null_kl=null_kl))
    assert not record["gate"]["passed"]
    assert record["verdict"] == "inconclusive: the gate failed (the controller did not learn)"
    assert all(v.startswith("inconclusive") for v in record["verdicts"].values())
    for name, d in record["differences"].items():
        assert d["result"] == ("adversarial" not in name)
    text = study.table(record)
    assert "**FAILED**" in text and "| adversarial-frozen | withheld: the gate failed |" in text
    assert "| trivialaugment-baseline | -1.50 |" in text  # the comparisons without the controller stand


def test_five_of_six_seeds_pass_the_gate():
    record = study.analyse(_rows(kl=(2.0, 2.0, 2.0, 2.0, 2.0, 0.5)))
    assert record["gate"]["passed"] and record["gate"]["kl_seeds"] == 5


def test_kl_exactly_one_nat_passes():
    assert study.kl_passes(1.0) and not study.kl_passes(np.nextafter(1.0, 0.0))
    record = study.analyse(_rows(kl=(1.0,) * SEEDS, null_kl=(0.5,) * SEEDS))
    assert record["gate"]["kl_seeds"] == SEEDS and record["gate"]["passed"]


def test_the_null_must_be_exceeded_strictly():
    from fastpolicy.search import null

    drawn = list(range(21))  # its 95th percentile is 19
    assert null.percentile(drawn) == pytest.approx(19.0)
    assert null.exceeds_null(19.01, drawn) and not null.exceeds_null(19.0, drawn)
    assert not null.exceeds_null(5.0, [])  # a gate that cannot be checked does not pass


def test_the_last_quarter_is_the_last_quarter():
    losses = [4.0, 3.0, 2.0, 1.0, 0.8, 0.6, 0.4, 0.2]  # falls over the epochs
    assert study.last_fraction_mean(losses) == pytest.approx(0.3)  # the last 2 of 8
    assert study.last_fraction_mean([2.0, 1.0, 0.5]) == pytest.approx(0.5)  # round(0.75) = 1 epoch
    assert study.last_fraction_mean([1.0]) == 1.0 and np.isnan(study.last_fraction_mean([]))


def test_seeds_needed():
    assert [study.seeds_needed(n) for n in (2, 5, 6)] == [2, 4, 5]


def test_verdict_words_follow_the_interval():
    assert study.analyse(_rows(adversarial_error=18.0))["verdict"].startswith("reversed")
    noisy = _rows(adversarial_error=17.0)
    bumps = (0.6, -0.6, 0.3, -0.3, 0.0, 0.1)
    for r, bump in zip([r for r in noisy if r["arm"] == "adversarial"], bumps, strict=True):
        r["test_error_percent"] += bump
    assert study.analyse(noisy)["verdict"].startswith("not different at this power")


def test_a_missing_seed_fails_the_gate():
    rows = [r for r in _rows() if not (r["arm"] == "frozen" and r["seed"] == 4)]
    assert not study.gate(rows, list(range(SEEDS)))["passed"]


def test_the_full_budget_needs_a_qualifying_regime(tmp_path):
    from fastpolicy.errors import UserError

    record = tmp_path / "regime.json"
    with pytest.raises(UserError, match="no regime record"):
        study.resolve_budget("full", regime_record=str(record))
    cell = {"cell": "512x80w32", "images": 512, "epochs": 80, "width": 32, "rule": {"passed": False}}
    record.write_text(json.dumps({"chosen": None, "cells": [cell], "magnitude_scale": None}))
    with pytest.raises(UserError, match="no cell qualified"):
        study.resolve_budget("full", regime_record=str(record))
    record.write_text(json.dumps({"chosen": "512x80w32", "cells": [cell], "magnitude_scale": 0.5}))
    with pytest.raises(UserError, match="no cell qualified"):  # a record naming a cell that failed its rule
        study.resolve_budget("full", regime_record=str(record))
    cell["rule"]["passed"] = True
    record.write_text(json.dumps({"chosen": "512x80w32", "cells": [cell], "magnitude_scale": 0.5, "git": {}}))
    spec = study.resolve_budget("full", regime_record=str(record))
    assert (spec["train_subset"], spec["epochs"], spec["width"], spec["magnitude_scale"]) == (512, 80, 32, 0.5)
    assert spec["seeds"] == 6 and spec["M"] == 4


def test_unknown_arm_and_budget_are_refused(tmp_path):
    with pytest.raises(ValueError, match="arm must be one of"):
        study.build_run(str(tmp_path / "x"), "fixed", 0, study.BUDGETS["smoke"])
    with pytest.raises(ValueError, match="budget must be one of"):
        study.run_adversarial_study(str(tmp_path), budget="huge")


pytest.importorskip("nvidia.dali")


@pytest.mark.slow
def test_the_smoke_study_runs_every_arm_and_reuses_finished_runs(tmp_path):
    from fastpolicy.cli import main

    runs, results = str(tmp_path / "runs"), str(tmp_path / "results")
    argv = ["reproduce", "adversarial", "--budget", "smoke", "--out", runs, "--results", results, "--no-progress"]
    assert main(argv) == 0
    record = json.loads((tmp_path / "results" / "adversarial_smoke.json").read_text())
    assert [(r["arm"], r["seed"]) for r in record["runs"]] == [(a, s) for s in range(2) for a in study.ARMS]
    assert [r["M"] for r in record["runs"][: len(study.ARMS)]] == [1, 2, 2, 2, 2, 2]
    assert all(r["commit"] == record["git"] for r in record["runs"]) and record["commits"] == [record["git"]]
    for r in record["runs"]:  # one magnitude scale for every arm
        assert r["magnitude_scale"] == study.BUDGETS["smoke"]["magnitude_scale"]
    assert set(record) >= {"gate", "differences", "mechanism", "verdict", "date", "command", "versions", "settings"}
    assert record["command"] == " ".join(["fastpolicy", *argv])  # as typed, whatever started the process
    frozen = [r for r in record["runs"] if r["arm"] == "frozen"]
    adversarial = [r for r in record["runs"] if r["arm"] == "adversarial"]
    assert all(r["controller_kl_from_start"] == 0 and set(r["kl_by_probe"]) == {0.0} for r in frozen)
    for r in adversarial:  # 2 epochs × 2 windows of 2 batches (128 images, batch 32), each update probed
        assert r["controller_updates"] == 4 and r["probed_updates"] == [0, 1, 2, 3] and len(r["ops_by_probe"]) == 4
        assert len(r["null_kl"]) == study.BUDGETS["smoke"]["null_draws"] and all(k >= -0.5 for k in r["null_kl"])
    for d in record["differences"].values():
        assert set(d) >= {"mean", "t_ci95", "sign_p", "per_seed", "result"}
    for suffix in ("json", "md", "png"):
        assert (tmp_path / "results" / f"adversarial_smoke.{suffix}").stat().st_size > 0
    # the old name is an alias; finished runs are reused, not run again
    assert main([*argv[:1], "table4", *argv[2:]]) == 0
    again = json.loads((tmp_path / "results" / "adversarial_smoke.json").read_text())
    assert [r["test_error_percent"] for r in again["runs"]] == [r["test_error_percent"] for r in record["runs"]]
