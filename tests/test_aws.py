"""AWS: the PPO agent and baseline (exact checks), the search on tiny Fashion-MNIST runs (CPU), final training."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from fastpolicy import AWSDistribution, Policy, PolicyFormatError, PolicySchedule
from fastpolicy.distribution import normalized_sigmoid
from fastpolicy.search import aws_agent
from fastpolicy.train.data import split_indices

E = 36


# -- the agent: exact, no data ------------------------------------------------------------


def test_normalized_sigmoid_starts_uniform_and_sums_to_one():
    policy = aws_agent.PairPolicy()
    joint = policy.log_joint().exp().detach()
    assert joint.shape == (E, E)
    np.testing.assert_allclose(joint.numpy(), np.full((E, E), 1 / E**2), rtol=1e-12)
    rng = np.random.default_rng(0)
    theta1, theta2 = rng.normal(0, 3, E), rng.normal(0, 3, (E, E))
    policy = aws_agent.PairPolicy.from_distribution(AWSDistribution(theta1, theta2))
    joint = policy.log_joint().exp().detach().numpy()
    assert joint.sum() == pytest.approx(1, abs=1e-12)
    s1 = 1 / (1 + np.exp(-theta1))
    np.testing.assert_allclose(joint.sum(1), s1 / s1.sum(), rtol=1e-10)  # p1 = s / Σ s
    np.testing.assert_allclose(joint, AWSDistribution(theta1, theta2).joint(), rtol=1e-10)
    np.testing.assert_allclose(normalized_sigmoid(theta2).sum(1), 1, rtol=1e-12)
    back = policy.distribution()
    np.testing.assert_array_equal(back.theta1, theta1)
    np.testing.assert_array_equal(back.theta2, theta2)


def test_pair_frequencies_and_pairs_of_round_trip():
    dist, rng = AWSDistribution(), np.random.default_rng(1)
    pairs = dist.sample_pairs(500, rng)
    params = dist.params_for_pairs(pairs, rng)
    np.testing.assert_array_equal(dist.pairs_of(params), pairs)
    freq = aws_agent.pair_frequencies(np.array([[0, 1], [0, 1], [2, 3], [35, 0]]), E)
    assert freq.sum() == 1 and freq[0, 1] == 0.5 and freq[2, 3] == freq[35, 0] == 0.25
    bad = params.__class__(**{**params.__dict__, "bin": np.where(params.bin >= 0, 0, params.bin)})
    with pytest.raises(ValueError, match="not an element of the AWS space"):
        dist.pairs_of(bad)
    with pytest.raises(ValueError, match="non-empty"):
        aws_agent.pair_frequencies(np.zeros((0, 2), int), E)


def test_ema_baseline_arithmetic():
    baseline = aws_agent.EMABaseline(0.9)
    assert baseline.value is None and baseline.advantage(0.5) == 0.0
    assert baseline.update(0.5) == 0.5  # the first reward is taken as is
    assert baseline.advantage(0.7) == pytest.approx(0.2)
    assert baseline.update(0.7) == pytest.approx(0.9 * 0.5 + 0.1 * 0.7)
    assert baseline.update(0.1) == pytest.approx(0.9 * 0.52 + 0.1 * 0.1)
    restored = aws_agent.EMABaseline()
    restored.load_state_dict(baseline.state_dict())
    assert restored.value == baseline.value
    with pytest.raises(ValueError, match="baseline weight"):
        aws_agent.EMABaseline(1.0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ppo_moves_probability_toward_rewarded_pairs(sign):
    """A trajectory rich in pair (3, 7): above the baseline its probability rises, below it falls."""
    rng = np.random.default_rng(2)
    pairs = np.concatenate([AWSDistribution().sample_pairs(300, rng), np.tile([[3, 7]], (100, 1))])
    freq = aws_agent.pair_frequencies(pairs, E)
    policy = aws_agent.PairPolicy()
    optimizer = aws_agent.make_optimizer(policy)
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["betas"] == (0.5, 0.999)
    before = policy.log_joint().exp()[3, 7].item()
    result = aws_agent.ppo_update(policy, optimizer, freq[None], [sign * 0.05], steps=5, max_kl=1.0)
    after = policy.log_joint().exp()[3, 7].item()
    assert result["steps"] == 5 and result["kl"] > 0
    assert (after - before) * sign > 0
    assert policy.log_joint().exp().sum().item() == pytest.approx(1, abs=1e-12)


def test_ppo_stops_early_on_kl_and_does_nothing_without_advantage():
    freq = aws_agent.pair_frequencies(np.array([[0, 0]] * 10), E)
    policy = aws_agent.PairPolicy()
    result = aws_agent.ppo_update(policy, aws_agent.make_optimizer(policy), freq[None], [1.0], steps=10, max_kl=1e-6)
    assert result["steps"] == 1 and result["kl"] > 1e-6
    still = aws_agent.PairPolicy()
    result = aws_agent.ppo_update(still, aws_agent.make_optimizer(still), freq[None], [0.0])
    assert result["kl"] == 0 and torch.count_nonzero(still.theta2) == 0
    with pytest.raises(ValueError, match="advantages"):
        aws_agent.ppo_update(still, aws_agent.make_optimizer(still), freq[None], [0.0, 1.0])


def test_ppo_clips_the_ratio():
    """Once a trajectory's likelihood ratio leaves [0.8, 1.2] in the advantage's direction its
    gradient is cut: the surrogate stops growing past 1.2 × A."""
    freq = aws_agent.pair_frequencies(np.array([[5, 5]]), E)
    policy = aws_agent.PairPolicy()
    result = aws_agent.ppo_update(
        policy, aws_agent.make_optimizer(policy, lr=1.0), freq[None], [1.0], steps=20, max_kl=100.0
    )
    assert result["clip_fraction"] == 1.0 and result["surrogate"] == pytest.approx(1.2)


def test_split_is_seeded_disjoint_and_sized():
    train, val = split_indices(100, 20, seed=3, train_count=50)
    assert len(val) == 20 and len(train) == 50 and not set(train) & set(val)
    again = split_indices(100, 20, seed=3, train_count=50)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again))
    assert not np.array_equal(split_indices(100, 20, seed=4)[1], val)
    with pytest.raises(ValueError, match="validation split"):
        split_indices(10, 10, seed=0)


# -- the search on tiny Fashion-MNIST runs ---------------------------------------------------

pytest.importorskip("nvidia.dali")

from fastpolicy.policies import load_policy_file  # noqa: E402
from fastpolicy.train.aws import AWSConfig, AWSSearch  # noqa: E402
from fastpolicy.train.checkpoint import CheckpointError  # noqa: E402
from fastpolicy.train.final import FinalTraining, TrainConfig  # noqa: E402
from fastpolicy.train.rundir import RunFolderError  # noqa: E402


def _config(out, **changes) -> AWSConfig:
    settings = dict(out=str(out), stage1_epochs=1, loops=2, train_subset=128, val_count=64, batch=32, progress=False)
    return AWSConfig(**(settings | changes))


@pytest.mark.slow
def test_search_writes_every_artefact_and_never_uses_the_test_split(tmp_path):
    distribution = AWSSearch(_config(tmp_path)).run()
    for name in (
        "shared.pt",
        "stage1.pt",
        "checkpoint.pt",
        "policy.json",
        "split.json",
        "metrics.csv",
        "stage1.csv",
        "distributions.npz",
        "distribution_heatmap.png",
        "top_pairs.png",
        "search_progress.png",
        "samples.png",
        "summary.json",
    ):
        assert os.path.getsize(tmp_path / name) > 0, name
    assert os.listdir(tmp_path / "tensorboard")
    loaded = AWSDistribution.load(tmp_path / "policy.json")
    np.testing.assert_array_equal(loaded.theta2, distribution.theta2)
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["dataset"] == "fashion_mnist/train" and len(split["val"]) == 64 and len(split["train"]) == 128
    assert not set(split["train"]) & set(split["val"])
    header, *rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2
    for column in ("reward", "baseline", "entropy", "advantage", "kl", "top1_pair", "top5_prob"):
        assert column in header.split(","), column
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["loops"]) == 2 and len(summary["stage1"]) == 1 and len(summary["top_pairs"]) == 20
    thetas = np.load(tmp_path / "distributions.npz")
    assert thetas["theta1"].shape == (3, E) and thetas["theta2"].shape == (3, E, E)
    assert not thetas["theta2"][0].any()  # loop 0 starts uniform


def test_every_loop_reloads_the_shared_weights(tmp_path):
    search = AWSSearch(_config(tmp_path, loops=3))
    search.run_stage1()
    shared = torch.load(tmp_path / "shared.pt", weights_only=True)  # never pickled objects
    reload, seen = search.reload_shared, []

    def checked_reload():
        reload()
        for name, value in search.model.state_dict().items():
            assert torch.equal(value, shared["model"][name]), name
        assert all(g["lr"] == search.finetune_lr for g in search.optimizer.param_groups)
        seen.append(search.loop)

    search.reload_shared = checked_reload
    search.run()
    assert seen == [0, 1, 2]
    changed = any(not torch.equal(v, shared["model"][k]) for k, v in search.model.state_dict().items())
    assert changed  # fine-tuning moved the weights; the next loop starts from the shared ones again


def test_finetune_counts_the_pairs_it_trained_with(tmp_path):
    search = AWSSearch(_config(tmp_path))
    search.run_stage1()
    theta1, theta2 = np.full(E, -30.0), np.full((E, E), -30.0)
    theta1[4], theta2[4, 9] = 30.0, 30.0  # practically all mass on pair (4, 9)
    result = search.finetune(AWSDistribution(theta1, theta2))
    assert result["frequencies"][4, 9] > 0.99 and result["frequencies"].sum() == pytest.approx(1)
    assert len(result["accuracies"]) == 1 and result["reward"] == result["accuracies"][0]


class Interrupted(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("where", ["stage1", "stage2"])
def test_resume_continues_the_same_search(tmp_path, where):
    whole = AWSSearch(_config(tmp_path / "whole", stage1_epochs=2, loops=3))
    whole.run()

    def stop(*_):
        raise Interrupted

    cut = AWSSearch(_config(tmp_path / "cut", stage1_epochs=2, loops=3))
    with pytest.raises(Interrupted):
        if where == "stage1":
            cut.stage1.run(on_epoch_end=stop)
        else:
            cut.run(on_loop_end=stop)
    resumed = AWSSearch(_config(tmp_path / "cut", stage1_epochs=2, loops=3), resume=True)
    assert (resumed.stage1.epoch, resumed.loop) == ((1, 0) if where == "stage1" else (0, 1))
    resumed.run()
    for a, b in zip(whole.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(a, b)
    assert whole.baseline.value == resumed.baseline.value
    assert [r["reward"] for r in whole.history] == [r["reward"] for r in resumed.history]
    assert [r["val_accuracy"] for r in whole.stage1.history] == [r["val_accuracy"] for r in resumed.stage1.history]
    for name in ("metrics.csv", "stage1.csv"):
        assert (tmp_path / "whole" / name).read_text().count("\n") == (tmp_path / "cut" / name).read_text().count("\n")


@pytest.mark.slow
def test_resume_refuses_other_settings_and_allows_more_loops(tmp_path):
    AWSSearch(_config(tmp_path, loops=1)).run()
    with pytest.raises(CheckpointError, match=r"other settings \(seed: 0 → 5\)"):
        AWSSearch(_config(tmp_path, seed=5), resume=True)
    longer = AWSSearch(_config(tmp_path, loops=2), resume=True)
    assert longer.loop == 1
    longer.run()
    assert longer.loop == 2
    with pytest.raises(RunFolderError, match="no run to continue"):
        AWSSearch(_config(tmp_path / "none"), resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        AWSSearch(_config(tmp_path / "empty"), resume=True)
    with pytest.raises(RunFolderError, match="--overwrite"):  # a finished search is never clobbered
        AWSSearch(_config(tmp_path, loops=2))
    with pytest.raises(ValueError, match="reward must be"):
        AWSSearch(_config(tmp_path / "bad", reward="mean"))


def test_final_training_with_each_kind_of_policy_file(tmp_path):
    rng = np.random.default_rng(0)
    files = {
        "aws": AWSDistribution(rng.normal(size=E), rng.normal(size=(E, E))).save(tmp_path / "aws.json"),
        "policy": Policy.random(rng).save(tmp_path / "policy.json"),
        "schedule": PolicySchedule([[Policy.random(rng), Policy.random(rng)]]).save(tmp_path / "schedule.json"),
    }
    for kind, path in files.items():
        run = FinalTraining(
            TrainConfig(
                out=str(tmp_path / kind),
                policy=str(path),
                epochs=1,
                batch=32,
                train_subset=96,
                val_subset=64,
                progress=False,
            )
        )
        row = run.run()
        assert (2 if kind == "schedule" else 1) == run.preset.M
        assert 0 <= row["val_accuracy"] <= 1 and run.train_loader.policies is not None
        summary = json.loads((tmp_path / kind / "summary.json").read_text())
        assert summary["final_error_percent"] == pytest.approx(100 * (1 - row["val_accuracy"]))
    (tmp_path / "bad.json").write_text('{"format": "something.else", "version": 1}')
    with pytest.raises(PolicyFormatError, match="bad.json.*'format'"):
        load_policy_file(str(tmp_path / "bad.json"))


def test_train_with_a_standard_policy_by_name(tmp_path):
    """``fastpolicy train --policy autoaugment``: the one resolver (names and files) serves the training."""
    from fastpolicy.cli import main
    from fastpolicy.policies import RandAugment, autoaugment

    tiny = ["--epochs", "1", "--subset", "64", "--val-subset", "32", "--batch", "32", "--no-progress"]
    assert main(["-q", "train", "--policy", "autoaugment", "--out", str(tmp_path / "aa"), *tiny]) == 0
    summary = json.loads((tmp_path / "aa" / "summary.json").read_text())
    assert summary["config"]["policy"] == "autoaugment" and summary["preset"]["M"] == 1
    run = FinalTraining(
        TrainConfig(
            out=str(tmp_path / "ra"),
            policy="randaugment",
            epochs=1,
            train_subset=64,
            val_subset=32,
            batch=32,
            progress=False,
        )
    )
    assert run.policy == RandAugment()
    run.run()
    assert run.train_loader.policies is not None
    cifar = FinalTraining(
        TrainConfig(
            out=str(tmp_path / "cifar"),
            policy="autoaugment:cifar10",
            epochs=1,
            train_subset=64,
            val_subset=32,
            batch=32,
            progress=False,
        )
    )
    assert cifar.policy == autoaugment("cifar10")
    assert main(["-q", "train", "--policy", "autoaugmnet", "--out", str(tmp_path / "typo"), *tiny]) == 2


@pytest.mark.slow
def test_cli_search_aws_then_train_with_its_policy(tmp_path):
    from fastpolicy.cli import main

    assert (
        main(
            [
                "search",
                "aws",
                "--out",
                str(tmp_path / "search"),
                "--stage1-epochs",
                "1",
                "--loops",
                "1",
                "--subset",
                "96",
                "--val",
                "64",
                "--batch",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    policy = tmp_path / "search" / "policy.json"
    assert (
        main(
            [
                "train",
                "--policy",
                str(policy),
                "--M",
                "2",
                "--out",
                str(tmp_path / "train"),
                "--epochs",
                "1",
                "--subset",
                "96",
                "--batch",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["preset"]["M"] == 2 and summary["config"]["policy"] == str(policy)


def test_policy_learning_rate_follows_the_official_code(tmp_path):
    from fastpolicy.train.presets import AWS_STAGES

    assert AWS_STAGES["imagenet_resnet50"].agent_lr == 0.2 and AWS_STAGES["cifar10_wrn28_10"].agent_lr == 0.1
    search = AWSSearch(_config(tmp_path / "default"))
    assert search.agent_optimizer.param_groups[0]["lr"] == 0.1
    search = AWSSearch(_config(tmp_path / "given", agent_lr=0.2))
    assert search.agent_optimizer.param_groups[0]["lr"] == 0.2


def test_tail_fine_tuning_continues_the_stage1_schedule(tmp_path, caplog):
    """``finetune_schedule="tail"``: stage 1 trains the first epochs of one cosine schedule and
    every fine-tuning its last ones; ``stage1_augment="none"`` trains the shared weights without
    policy, and the log says so."""
    import logging

    search = AWSSearch(_config(tmp_path, loops=1, finetune_schedule="tail", stage1_augment="none"))
    steps = len(search.train_loader)
    total = (search.stages.stage1_epochs + search.stages.finetune_epochs) * steps
    logger = logging.getLogger("fastpolicy")  # the CLI's setup stops it propagating to caplog's root handler
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="fastpolicy"):
            search.run_stage1()
    finally:
        logger.removeHandler(caplog.handler)
    assert "with standard augmentation only (no policy)" in caplog.text and "uniform" not in caplog.text
    assert f"the first {search.stages.stage1_epochs} of a" in caplog.text
    assert search.stage1.train_loader.policies is None  # no policy in stage 1
    lr = search.preset.lr
    assert search.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.5 * (1 + np.cos(np.pi * steps / total)))
    search.reload_shared()
    scheduler = search.finetune_scheduler()
    assert search.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.5 * (1 + np.cos(np.pi * steps / total)))
    for _ in range(steps):
        search.optimizer.step()
        scheduler.step()
    assert search.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert 0 <= search.finetune(AWSDistribution())["reward"] <= 1
    with pytest.raises(ValueError, match="finetune_schedule"):
        AWSSearch(_config(tmp_path / "bad", finetune_schedule="cosine"))


def test_joint_parameterization_is_one_normalized_sigmoid_over_pairs():
    from fastpolicy.search.aws_agent import PairPolicy

    rng = np.random.default_rng(0)
    theta = rng.normal(0, 2, (E, E))
    joint = AWSDistribution(None, theta, "joint")
    s = 1 / (1 + np.exp(-theta))
    np.testing.assert_allclose(joint.joint(), s / s.sum())
    p1, p2 = joint.probabilities()
    np.testing.assert_allclose(p1[:, None] * p2, joint.joint())
    pairs = joint.sample_pairs(100000, rng)
    frequencies = np.bincount(pairs[:, 0] * E + pairs[:, 1], minlength=E * E).reshape(E, E) / len(pairs)
    assert np.abs(frequencies - joint.joint()).max() < 0.002
    policy = PairPolicy.from_distribution(joint)
    np.testing.assert_allclose(policy.log_joint().exp().detach().numpy(), joint.joint())
    again = AWSDistribution.from_json(joint.to_json())
    assert again.parameterization == "joint" and np.allclose(again.joint(), joint.joint())
    legacy = {k: v for k, v in AWSDistribution().to_dict().items() if k != "parameterization"}
    assert AWSDistribution.from_dict(legacy).parameterization == "factorized"  # files written before
    with pytest.raises(ValueError, match="no θ1"):
        AWSDistribution(np.ones(E), theta, "joint")


@pytest.mark.slow
def test_aws_search_with_the_joint_parameterization(tmp_path):
    search = AWSSearch(_config(tmp_path, loops=2, parameterization="joint"))
    search.run()
    saved = load_policy_file(str(tmp_path / "policy.json"))
    assert saved.parameterization == "joint" and np.all(saved.theta1 == 0)
    # one PPO step with a positive advantage raises the drawn pairs' probability, through θ2 alone
    from fastpolicy.search import aws_agent

    policy = aws_agent.PairPolicy(parameterization="joint")
    optimizer = aws_agent.make_optimizer(policy)
    frequencies = aws_agent.pair_frequencies(np.array([[3, 4], [3, 4], [10, 0]]), E)[None]
    aws_agent.ppo_update(policy, optimizer, frequencies, [1.0], 0.2, 5, 0.02)
    assert policy.distribution().joint()[3, 4] > 1 / E**2 and torch.all(policy.theta1 == 0)
