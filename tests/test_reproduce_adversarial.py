"""The adversarial study (fastpolicy/reproduce/adversarial.py): its pre-registered gate, paired
analysis and verdict on hand-made runs, and the whole study at the smoke budget (slow)."""

from __future__ import annotations

import json

import pytest

from fastpolicy.reproduce import adversarial as study


def _rows(kl=(2.0,) * 5, gap=(0.1,) * 5, adversarial_error=16.0):
    """Five seeds × five arms; test error per arm (+ seed/10), the adversarial arm's final KL and its
    last-quarter training-loss gap over the frozen arm per seed."""
    errors = {"baseline": 18.0, "frozen": 17.0, "adversarial": adversarial_error, "trivialaugment": 16.5,
              "randaugment": 17.5}  # fmt: skip
    rows = []
    for s in range(5):
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
            rows.append(row)
    return rows


def test_the_gate_passes_and_the_comparisons_are_results():
    record = study.analyse(_rows())
    assert record["gate"]["passed"] and record["gate"]["needed"] == 4
    d = record["differences"]["adversarial-frozen"]
    assert d["result"] and d["mean"] == pytest.approx(-1.0 + 0.1) and d["n"] == 5
    assert d["t_ci95"][1] < 0 and d["sign_p"] == pytest.approx(2 / 32)
    assert record["verdict"].startswith("reproduced")
    assert record["mechanism"]["reward_split_half_r_mean_per_seed"] == pytest.approx([0.3] * 5)
    assert "**passed**" in study.table(record) and "withheld" not in study.table(record)


@pytest.mark.parametrize(
    "kl, gap",
    [
        ((2.0, 2.0, 2.0, 0.5, 0.5), (0.1,) * 5),  # KL ≥ 1 nat in only 3 of 5 seeds
        ((2.0,) * 5, (0.1, 0.1, 0.1, -0.1, 0.0)),  # the loss gap > 0 in only 3 of 5 seeds
    ],
)
def test_a_failed_gate_withholds_every_adversarial_comparison(kl, gap):
    record = study.analyse(_rows(kl, gap))
    assert not record["gate"]["passed"]
    assert record["verdict"] == "inconclusive: the gate failed (the controller did not learn)"
    for name, d in record["differences"].items():
        assert d["result"] == ("adversarial" not in name)
    text = study.table(record)
    assert "**FAILED**" in text and "| adversarial-frozen | withheld: the gate failed |" in text
    assert "| trivialaugment-baseline | -1.50 |" in text  # the comparisons without the controller stand


def test_verdict_words_follow_the_interval():
    assert study.analyse(_rows(adversarial_error=18.0))["verdict"].startswith("reversed")
    noisy = _rows(adversarial_error=17.0)
    for r, bump in zip([r for r in noisy if r["arm"] == "adversarial"], (0.6, -0.6, 0.3, -0.3, 0.0), strict=True):
        r["test_error_percent"] += bump
    assert study.analyse(noisy)["verdict"].startswith("not different at this power")


def test_a_missing_seed_fails_the_gate():
    rows = [r for r in _rows() if not (r["arm"] == "frozen" and r["seed"] == 4)]
    assert not study.gate(rows, list(range(5)))["passed"]


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
    assert [r["M"] for r in record["runs"][:5]] == [1, 2, 2, 2, 2]
    assert set(record) >= {"gate", "differences", "mechanism", "verdict", "date", "command", "versions", "settings"}
    assert record["command"] == " ".join(["fastpolicy", *argv])  # as typed, whatever started the process
    frozen = [r for r in record["runs"] if r["arm"] == "frozen"]
    adversarial = [r for r in record["runs"] if r["arm"] == "adversarial"]
    assert all(r["controller_kl_from_start"] == 0 and set(r["kl_by_probe"]) == {0.0} for r in frozen)
    for r in adversarial:  # 2 epochs × 2 windows of 2 batches (128 images, batch 32), each update probed
        assert r["controller_updates"] == 4 and r["probed_updates"] == [0, 1, 2, 3] and len(r["ops_by_probe"]) == 4
    for d in record["differences"].values():
        assert set(d) >= {"mean", "t_ci95", "sign_p", "per_seed", "result"}
    for suffix in ("json", "md", "png"):
        assert (tmp_path / "results" / f"adversarial_smoke.{suffix}").stat().st_size > 0
    # the old name is an alias; finished runs are reused, not run again
    assert main([*argv[:1], "table4", *argv[2:]]) == 0
    again = json.loads((tmp_path / "results" / "adversarial_smoke.json").read_text())
    assert [r["test_error_percent"] for r in again["runs"]] == [r["test_error_percent"] for r in record["runs"]]
