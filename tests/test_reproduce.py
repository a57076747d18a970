"""Reproductions: correlation arithmetic, the studies' smoke budgets end to end, the ImageNet dry run (CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastpolicy.reproduce import proxy


def test_pearson_and_spearman_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = 0.5 * x + rng.normal(size=12)
    y[3] = y[4]  # a tie
    assert proxy.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert proxy.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert proxy.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1)
    np.testing.assert_array_equal(proxy.ranks([5, 1, 5, 3]), [3.5, 1, 3.5, 2])


def test_candidate_policies_differ_and_start_uniform():
    policies = proxy.candidate_policies(5, seed=1)
    assert len(policies) == 5 and proxy.describe(policies[0]) == "uniform"
    for policy in policies[1:]:
        top = policy.top_pairs(4)
        assert sum(p for _, _, p in top) > 0.98  # nearly all mass on its four pairs
        assert proxy.describe(policy) != "uniform"
    assert len({proxy.describe(p) for p in policies}) == 5


pytest.importorskip("nvidia.dali")


def _cli(*args):
    """``fastpolicy ...`` (in this process)."""
    from fastpolicy.cli import main

    assert main([*args, "--no-progress"]) == 0


def test_table4_smoke_study(tmp_path):
    runs, results = str(tmp_path / "runs"), str(tmp_path / "results")
    _cli("reproduce", "table4", "--budget", "smoke", "--out", runs, "--results", results)
    record = json.loads((tmp_path / "results" / "ablation_smoke.json").read_text())
    assert len(record["runs"]) == 8 and set(record["summary"]) == {"baseline", "fixed", "random", "adversarial"}
    for arm, summary in record["summary"].items():
        assert summary["n"] == 2 and summary["mean"] == pytest.approx(np.mean(summary["errors"]))
    assert [r["M"] for r in record["runs"][:4]] == [1, 8, 8, 8]
    for suffix in ("json", "md", "png"):
        assert (tmp_path / "results" / f"ablation_smoke.{suffix}").stat().st_size > 0
    _cli("reproduce", "table4", "--budget", "smoke", "--out", runs, "--results", results)  # finished runs reused
    again = json.loads((tmp_path / "results" / "ablation_smoke.json").read_text())
    assert [r["test_error_percent"] for r in again["runs"]] == [r["test_error_percent"] for r in record["runs"]]


def test_proxy_smoke_study(tmp_path):
    _cli("reproduce", "proxy", "--budget", "smoke", "--out", str(tmp_path / "runs"), "--results",
         str(tmp_path / "results"))
    record = json.loads((tmp_path / "results" / "proxy_smoke.json").read_text())
    assert len(record["policies"]) == 3
    for row in record["policies"]:
        assert 0 <= row["proxy_accuracy"] <= 1 and 0 <= row["full_accuracy"] <= 1
    assert set(record) >= {"pearson_r", "spearman_r", "policies", "settings"}
    assert (tmp_path / "results" / "proxy_smoke.png").stat().st_size > 0


def test_imagenet_dry_run_on_cpu(tmp_path):
    _cli("reproduce", "dry-run", "--preset", "imagenet_resnet50", "--search", "adversarial", "--batch", "2",
         "--M", "2", "--device", "cpu", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "adversarial" / "summary.json").read_text())
    row = summary["epochs"][-1]
    assert row["epoch"] == 0 and np.isfinite(row["train_loss"]) and len(row["reward"]) == 2
    assert summary["preset"]["model"] == "resnet50" and summary["preset"]["image_size"] == 224
    assert (tmp_path / "tree" / "train").is_dir() and (tmp_path / "tree" / "val").is_dir()
    from fastpolicy.reproduce.dry_run import dry_run

    with pytest.raises(ValueError, match="search must be"):
        dry_run("imagenet_resnet50", "other", str(tmp_path))
