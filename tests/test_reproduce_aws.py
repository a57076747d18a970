"""The AWS study (``fastpolicy reproduce aws``): its policies, its analysis on hand-made numbers,
and the smoke budget end to end, interrupted and resumed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fastpolicy.reproduce import aws


def test_candidate_policies_are_twelve_distinct_graded_ones():
    policies = aws.candidate_policies()
    keys = [key for key, _, _ in policies]
    assert len(policies) == 12 and len(set(keys)) == 12 and keys[0] == aws.UNIFORM and aws.IDENTITY in keys
    distributions = {key: d for key, _, d in policies}
    assert distributions[aws.UNIFORM].entropy() == pytest.approx(np.log(36 * 36))
    first, second, p = distributions[aws.IDENTITY].top_pairs(1)[0]
    assert (first, second) == ("Invert", "Invert") and p > 0.999
    joints = [d.joint().ravel() for _, _, d in policies]
    for i in range(12):
        for j in range(i):
            # no near-duplicates: every two policies differ in at least a third of their mass
            assert 0.5 * np.abs(joints[i] - joints[j]).sum() > 0.33, (keys[i], keys[j])
    geometric = [k for k in keys if k.startswith(("geometric", "shifts"))]
    assert len(geometric) >= 5  # geometric policies at several strengths
    with pytest.raises(ValueError, match="not AWS elements: Rotate@4"):
        aws.concentrated(["Rotate@4"])


def test_gate_passes_when_a_policy_beats_identity_and_fails_when_none_does():
    keys = [aws.UNIFORM, aws.IDENTITY, "geometric@3"]
    full = np.array([[0.80, 0.81, 0.79], [0.82, 0.82, 0.83], [0.84, 0.85, 0.83]])
    g = aws.gate(keys, full)
    assert g["passed"] and g["best_policy"] == "geometric@3" and g["policies_above_identity"] == ["geometric@3"]
    assert g["identity_accuracy"] == pytest.approx(0.82333, abs=1e-4) and g["rule"] == aws.GATE
    full[2] = 0.80
    g = aws.gate(keys, full)
    assert not g["passed"] and g["best_policy"] == aws.IDENTITY and g["policies_above_identity"] == []
    full[2] = full[1]  # a tie with identity is not "above" it
    assert not aws.gate(keys, full)["passed"]


def test_spearman_is_taken_over_the_policies_at_or_above_identity():
    keys = ["a", "b", aws.IDENTITY, "c", "d", "e", "f"]
    means = np.array([0.70, 0.75, 0.80, 0.81, 0.82, 0.83, 0.84])
    full = means[:, None] + np.array([[-0.001, 0.0, 0.001]])
    assert aws.at_or_above_identity(keys, full) == [2, 3, 4, 5, 6]
    # the proxy ranks the helpful policies perfectly but puts the two harmful ones on top
    uniform = np.array([0.95, 0.94, 0.60, 0.61, 0.62, 0.63, 0.64])[:, None] + np.zeros((1, 3))
    none = np.array([0.60, 0.61, 0.62, 0.64, 0.63, 0.66, 0.65])[:, None] + np.zeros((1, 3))
    out = aws.analyse_proxy(keys, full, {"uniform": uniform, "none": none}, resamples=200)
    assert out["subset"] == [aws.IDENTITY, "c", "d", "e", "f"]
    assert out["primary"]["spearman_at_or_above_identity"]["r"] == pytest.approx(1.0)
    assert out["correlations"]["uniform"]["all"]["spearman"]["r"] < 0
    assert out["correlations"]["none"]["at_or_above_identity"]["spearman"]["r"] == pytest.approx(0.8)
    d = out["primary"]["r_aws_minus_r_none"]
    assert d["difference"] == pytest.approx(0.2) and d["n"] == 5 and d["ci95"][0] <= d["ci95"][1]
    assert d == out["r_aws_minus_r_none"]["at_or_above_identity"]["spearman"]
    assert out["r_aws_minus_r_none"]["all"]["spearman"]["difference"] < 0
    # Pearson beside Spearman, on both sets, for the correlations and their difference
    for subset in ("all", "at_or_above_identity"):
        assert set(out["r_aws_minus_r_none"][subset]) == {"spearman", "pearson"}
        for variant in ("uniform", "none"):
            assert set(out["correlations"][variant][subset]) >= {"pearson", "spearman"}
    pearson = out["r_aws_minus_r_none"]["at_or_above_identity"]["pearson"]
    f = full.mean(axis=1)[2:]
    expected = np.corrcoef(uniform[2:, 0], f)[0, 1] - np.corrcoef(none[2:, 0], f)[0, 1]
    assert pearson["difference"] == pytest.approx(expected) and pearson["method"] == "pearson"


@pytest.mark.parametrize(
    "rewards, expected",
    [
        ([0.1, 0.2, 0.3, 0.4], True),
        ([0.4, 0.3, 0.2, 0.1], False),
        ([0.5, 0.1, 0.6, 0.5], False),  # Spearman > 0 but the last quarter is not above the first
        ([0.3, 0.1, 0.9, 0.8, 0.7, 0.6, 0.25, 0.2], False),  # the last quarter is above the first, Spearman < 0
        ([0.3, 0.3, 0.3, 0.3], False),  # flat: no trend
        ([0.5, 0.4, 0.6, 0.45, 0.55, 0.5, 0.52, 0.48, 0.58, 0.47, 0.6, 0.51], False),  # r > 0, last > first, p 0.19
        ([0.5], False),
    ],
)
def test_a_rising_reward_trend(rewards, expected):
    trend = aws.rising(rewards)
    assert trend["rising"] is expected
    if len(rewards) >= 4 and np.ptp(rewards) > 0:
        quarter = round(len(rewards) / 4)
        assert trend["first_quarter"] == pytest.approx(np.mean(rewards[:quarter]))
        assert trend["last_quarter"] == pytest.approx(np.mean(rewards[-quarter:]))


def test_the_search_gate_needs_the_null_and_the_trend_in_every_search_seed():
    up, down = [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]
    null_kl = list(np.linspace(0.1, 0.5, 20))

    def run(seed, kl, rewards):
        return {"seed": seed, "kl_from_uniform": [0.1, kl], "reward": rewards, "null_kl": null_kl}

    assert aws.search_gate([run(0, 0.9, up), run(1, 0.9, up)])["passed"]
    assert not aws.search_gate([run(0, 0.9, up), run(1, 0.9, down)])["passed"]  # one seed's rewards fall
    gate = aws.search_gate([run(0, 0.9, up), run(1, 0.45, up)])  # below the null's 95th percentile (0.48)
    assert not gate["passed"] and [p["above_null"] for p in gate["per_seed"]] == [True, False]
    assert not aws.search_gate([])["passed"]


def test_the_ppo_null_is_seeded_and_each_draw_shuffles():
    from fastpolicy.search import null

    rng = np.random.default_rng(0)
    e = 36
    frequencies = rng.dirichlet(np.ones(e * e), size=(6, 1)).reshape(6, 1, e, e)
    rewards = rng.uniform(0.7, 0.8, size=6)
    options = dict(clip=0.2, steps=5, max_kl=0.02, lr=0.1, betas=(0.5, 0.999), baseline_weight=0.9)
    a = null.ppo_null(frequencies, rewards, seed=1, draws=3, **options)
    assert a == null.ppo_null(frequencies, rewards, seed=1, draws=3, **options)
    assert len(a) == 3 and all(k >= 0 for k in a) and len(set(a)) > 1  # each draw its own order
    with pytest.raises(ValueError, match="frequencies"):
        null.ppo_null(frequencies[:, 0], rewards, seed=1, draws=1, **options)


def test_search_differences_are_paired_found_minus_each_in_points():
    accuracy = {
        "found": [0.85, 0.86, 0.84],
        aws.UNIFORM: [0.84, 0.84, 0.83],
        aws.TRIVIAL: [0.86, 0.87, 0.85],
        aws.IDENTITY: [0.85, 0.86, 0.84],
    }
    d = aws.analyse_search(accuracy, ["found"])
    assert set(d) == {"found-uniform", "found-trivialaugment_wide", "found-identity"}
    assert d["found-uniform"]["per_seed"] == pytest.approx([1.0, 2.0, 1.0])
    assert d["found-uniform"]["mean"] == pytest.approx(4 / 3) and d["found-uniform"]["sign_p"] == pytest.approx(0.25)
    low, high = d["found-uniform"]["t_ci95"]
    assert low < 4 / 3 < high
    assert d["found-trivialaugment_wide"]["mean"] == pytest.approx(-1.0) and d["found-identity"]["sd"] == 0.0


def test_unknown_budget_and_too_few_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="budget must be one of full, smoke, got 'huge'"):
        aws.run_aws_study(str(tmp_path), "huge")
    with pytest.raises(ValueError, match="seeds must be at least 2"):
        aws.run_aws_study(str(tmp_path), "smoke", seeds=1)


@pytest.mark.slow
def test_smoke_study_runs_end_to_end_and_resumes_after_an_interruption(tmp_path, monkeypatch):
    pytest.importorskip("nvidia.dali")
    runs, results = str(tmp_path / "runs"), str(tmp_path / "results")
    real_scores = aws.proxy_scores

    def interrupted(out, policies, seed, spec, stage1_augment, *args):
        if seed == 1 and stage1_augment == "none":
            raise KeyboardInterrupt("interrupted")
        return real_scores(out, policies, seed, spec, stage1_augment, *args)

    monkeypatch.setattr(aws, "proxy_scores", interrupted)
    with pytest.raises(KeyboardInterrupt):
        aws.run_aws_study(runs, "smoke", results)
    finished = sorted(str(p) for p in (tmp_path / "runs").rglob("study.json"))
    assert len(finished) == 6 + 3  # 3 policies × 2 seeds from scratch; stage 1 uniform × 2, none × 1
    # a stage 1 interrupted after some of its fine-tunings: its shared weights are resumed, and
    # only the missing fine-tuning runs again
    stage1 = tmp_path / "runs" / "stage1-uniform" / "seed0"
    (stage1 / "study.json").unlink()
    finished.remove(str(stage1 / "study.json"))
    cache = json.loads((stage1 / "proxy.json").read_text())
    del cache["geometric@3"]
    (stage1 / "proxy.json").write_text(json.dumps(cache))
    stamps = {p: os.stat(p).st_mtime_ns for p in finished}

    monkeypatch.setattr(aws, "proxy_scores", real_scores)
    trained = []
    real_training = aws.FinalTraining

    class Counting(real_training):
        def run(self, *args, **kwargs):
            trained.append(self.config.out)
            return super().run(*args, **kwargs)

    monkeypatch.setattr(aws, "FinalTraining", Counting)
    record = aws.run_aws_study(runs, "smoke", results)
    assert sorted(os.path.basename(os.path.dirname(p)) for p in trained) == [
        "found_s0",
        "found_s0",
        "found_s1",
        "found_s1",
        aws.TRIVIAL,
        aws.TRIVIAL,
    ]  # only the units not finished before the interruption
    assert {p: os.stat(p).st_mtime_ns for p in finished} == stamps
    redone = json.loads((stage1 / "study.json").read_text())["held_out_accuracy"]
    assert set(redone) == {aws.UNIFORM, aws.IDENTITY, "geometric@3"}
    assert {k: redone[k] for k in cache} == cache

    saved = json.loads((tmp_path / "results" / "aws_smoke.json").read_text())
    assert saved["gate"] == record["gate"] and set(saved["gate"]) >= {"rule", "passed", "identity_accuracy"}
    assert saved["command"] == "python: run_aws_study(budget='smoke')"  # called from Python, not the CLI
    assert set(saved) >= {
        "date",
        "command",
        "versions",
        "settings",
        "policies",
        "gate",
        "proxy",
        "search",
        "wall_seconds",
        "unit_seconds",
        "git",
        "commits",
        "verdicts",
    }
    assert [p["key"] for p in saved["policies"]] == [aws.UNIFORM, aws.IDENTITY, "geometric@3"]
    for p in saved["policies"]:
        assert len(p["full_by_seed"]) == 2 and all(0 <= a <= 1 for a in p["full_by_seed"] + p["proxy_none_by_seed"])
    assert set(saved["proxy"]["primary"]) == {"spearman_at_or_above_identity", "r_aws_minus_r_none"}
    search = saved["search"]
    assert [r["seed"] for r in search["runs"]] == [0, 1]
    for run in search["runs"]:
        assert run["loops"] == 2 and len(run["kl_from_uniform"]) == 2 and len(run["null_kl"]) == 2
        assert all(np.isfinite(run["kl_from_uniform"])) and min(run["kl_from_uniform"]) >= 0
    assert [p["seed"] for p in search["gate"]["per_seed"]] == [0, 1]
    assert set(search["accuracy"]) == {"found_s0", "found_s1", aws.UNIFORM, aws.TRIVIAL, aws.IDENTITY}
    assert set(saved["verdicts"]) == {"proxy", "search"}
    assert saved["settings"]["finetune_epochs"] == 1 and saved["commits"]
    text = (tmp_path / "results" / "aws_smoke.md").read_text()
    for name, d in search["differences"].items():  # every statistic is in the table
        assert f"| {name} | {d['mean']:+.2f} | {d['sd']:.2f} |" in text
    for name, d in search["differences"].items():
        assert d["n"] == 2 and len(d["t_ci95"]) == 2 and 0 < d["sign_p"] <= 1, name
    assert saved["settings"]["deviations"] and "torch" in saved["versions"]
    for suffix in ("json", "md", "png"):
        assert (tmp_path / "results" / f"aws_smoke.{suffix}").stat().st_size > 0


@pytest.mark.slow
def test_the_ppo_null_in_the_recorded_order_is_the_search_itself(tmp_path):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.search import null
    from fastpolicy.train.aws import AWSConfig, AWSSearch

    config = AWSConfig(
        out=str(tmp_path / "search"), stage1_epochs=1, loops=4, val_count=300, train_subset=256, batch=32,
        finetune_lr=0.05, device="cpu", progress=False,
    )  # fmt: skip
    search = AWSSearch(config)
    search.run()
    rewards = [r["reward"] for r in search.history if "advantage" in r]
    assert np.ptp(rewards) > 0 and search.history[-1]["kl_from_uniform"] > 1e-6  # it moved: not a vacuous check
    kept = np.load(tmp_path / "search" / "distributions.npz")["trajectories"]
    assert kept.shape == (4, 1, 36, 36)
    options = dict(clip=config.clip, steps=config.ppo_steps, max_kl=config.max_kl, lr=search.agent_lr,
                   betas=config.agent_betas, baseline_weight=config.baseline_weight)  # fmt: skip
    replayed = null.ppo_null(kept, rewards, seed=0, draws=1, shuffle=False, **options)
    assert replayed[0] == pytest.approx(search.history[-1]["kl_from_uniform"], rel=1e-9)
    shuffled = null.ppo_null(kept, rewards, seed=0, draws=3, **options)
    assert len(shuffled) == 3 and any(k != pytest.approx(replayed[0]) for k in shuffled)
