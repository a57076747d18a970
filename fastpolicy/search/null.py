"""Shuffled-reward nulls: how far would a search's policy move if its rewards carried no
information? The same learner, from the same start, fed the same rewards in a shuffled order.

* :func:`controller_null` — Adversarial AutoAugment's LSTM controller: each update's M rewards are
  permuted across its M policies (the policies are the controller's own fresh samples), so a reward
  says nothing about the policy it goes to; the KL from the start after every update is the null's.
* :func:`ppo_null` — AWS's PPO: the loops' rewards are permuted across the loops, each still going
  with a recorded trajectory (its pair frequencies), so the advantage of a trajectory is noise.

Each returns one final KL (nats) per draw; :func:`percentile` gives the gate's threshold. A search
"moved" only if its recorded KL exceeds the null's 95th percentile (:data:`NULL_PERCENTILE`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

NULL_PERCENTILE = 95.0
"""The share of the null the recorded KL must exceed (pre-registered)."""
NULL_DRAWS = 20
"""Shuffles per null (the issue's figure came from 20)."""


def percentile(null_values, q: float = NULL_PERCENTILE) -> float:
    """The ``q``-th percentile of ``null_values`` (linear interpolation; NaN when empty)."""
    values = np.asarray(null_values, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else float("nan")


def exceeds_null(value: float, null_values, q: float = NULL_PERCENTILE) -> bool:
    """Whether ``value`` is strictly above the ``q``-th percentile of ``null_values`` (False for an
    empty null: a gate that cannot be checked does not pass)."""
    threshold = percentile(null_values, q)
    return bool(np.isfinite(threshold) and value > threshold)


def controller_null(
    start,
    rewards_by_update,
    lr: float,
    entropy_weight: float,
    seed: int,
    draws: int = NULL_DRAWS,
    count: int = 512,
) -> list[float]:
    """KL from ``start`` (a :class:`~fastpolicy.search.controller.PolicyController`, untouched) after
    replaying every update of ``rewards_by_update`` (a list of float [M] rewards, one per update)
    with the rewards shuffled across the M policies; one value per draw (nats, ``count`` policies
    each). Seeded by ``seed`` and the draw: the same arguments give the same null."""
    from . import controller as ctl

    kls = []
    for draw in range(draws):
        learner = copy.deepcopy(start)
        optimizer = ctl.make_optimizer(learner, lr)
        sampler = torch.Generator().manual_seed(seed * 1_000_003 + draw)
        shuffle = np.random.default_rng([seed, draw, 35])
        for rewards in rewards_by_update:
            rewards = np.asarray(rewards, dtype=np.float64)
            actions = learner.sample(len(rewards), sampler)
            ctl.update(learner, optimizer, actions, shuffle.permutation(rewards).tolist(), entropy_weight)
        probe = torch.Generator().manual_seed(seed * 7_919 + draw)
        kls.append(ctl.kl_divergence(learner, start, count, probe)[0])
    return kls


def ppo_null(
    frequencies,
    rewards,
    *,
    clip: float,
    steps: int,
    max_kl: float,
    lr: float,
    betas,
    baseline_weight: float,
    parameterization: str = "factorized",
    seed: int = 0,
    draws: int = NULL_DRAWS,
    shuffle: bool = True,
) -> list[float]:
    """KL from uniform (nats) after replaying AWS's PPO over the recorded loops — ``frequencies``
    (float [T, K, E, E]: each loop's K trajectories) and ``rewards`` (float [T]: each loop's mean
    reward; every trajectory of a loop gets it) — with the rewards permuted across the loops; one
    value per draw. The learner, its optimizer and the EMA baseline are built as the search builds them;
    ``shuffle=False`` replays the recorded order, which reproduces the search's own final KL for K = 1
    (tested: the null differs from the search by the order of its rewards alone)."""
    from ..search import aws_agent

    frequencies = np.asarray(frequencies, dtype=np.float64)
    rewards = np.asarray(rewards, dtype=np.float64)
    if frequencies.ndim != 4 or len(frequencies) != len(rewards):
        raise ValueError(f"need frequencies [T, K, E, E] and rewards [T], got {frequencies.shape} and {rewards.shape}")
    kls = []
    for draw in range(draws):
        order = (
            np.random.default_rng([seed, draw, 36]).permutation(len(rewards)) if shuffle else np.arange(len(rewards))
        )
        policy = aws_agent.PairPolicy(frequencies.shape[-1], parameterization)
        optimizer = aws_agent.make_optimizer(policy, lr, betas)
        baseline = aws_agent.EMABaseline(baseline_weight)
        for trajectories, reward in zip(frequencies, rewards[order], strict=True):
            advantages = [baseline.advantage(float(reward))] * len(trajectories)
            aws_agent.ppo_update(policy, optimizer, trajectories, advantages, clip, steps, max_kl)
            baseline.update(float(reward))
        found = policy.distribution()
        kls.append(float(np.log(found.n_elements**2) - found.entropy()))  # as the search logs it
    return kls


__all__ = ["NULL_DRAWS", "NULL_PERCENTILE", "controller_null", "exceeds_null", "percentile", "ppo_null"]
