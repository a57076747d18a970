"""The one sampler's law, tested once for every sampler kind against the policy's definition.

Every kind — a Policy (sub-policies with probabilities), an AWSDistribution, the standard
policies, a schedule epoch's mixture — is drawn :data:`DRAWS` times by the sampler the loader
and PolicyAugment share (``sample_policies``, ``sample_mixture``; compiled and NumPy paths
alike), and each slot's (op, bin) frequencies, each op's sign frequency and every value are
compared with what the definition says: frequencies within :data:`SE` standard errors, values
exactly.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from fastpolicy import OPS, AWSDistribution, Policy, sample_native
from fastpolicy.params import NO_OP
from fastpolicy.policies import RandAugment, TrivialAugmentWide, autoaugment
from fastpolicy.sampling import sample_mixture, sample_policies

DRAWS = 40_000
"""Rows drawn per sampler: a cell of probability p is known to ±√(p(1 − p)/40 000)."""
SE = 5.0
"""Tolerance of every frequency: 5 binomial standard errors (p ≈ 6·10⁻⁷ per cell by chance)."""


def _slot_law(sampler, k: int) -> list[dict]:
    """Per slot, P(op id, bin) from the sampler's definition (bin −1 without a magnitude; op −1:
    nothing applied)."""
    space = sampler.space

    def cell(op: str, b: int) -> tuple[int, int]:
        return OPS[op].id, (b if space.magnitude(op) is not None else -1)

    laws = [Counter() for _ in range(k)]
    if isinstance(sampler, Policy):
        subs = sampler.sub_policies
        for sub in subs:
            for j in range(k):
                if j < len(sub):
                    laws[j][cell(sub[j].op, sub[j].bin)] += sub[j].prob / len(subs)
                    laws[j][NO_OP, -1] += (1 - sub[j].prob) / len(subs)
                else:
                    laws[j][NO_OP, -1] += 1 / len(subs)
    elif isinstance(sampler, RandAugment):
        choices = len(space.ops) + 1  # Identity among them
        for j in range(k):
            laws[j][NO_OP, -1] += 1 / choices if j < sampler.num_ops else 1.0 - 1 / choices
            for op in space.ops:
                if j < sampler.num_ops:
                    laws[j][cell(op, sampler.magnitude)] += 1 / choices
    elif isinstance(sampler, TrivialAugmentWide):
        choices = len(space.ops) + 1
        laws[0][NO_OP, -1] += 1 / choices
        for op in space.ops:
            if space.magnitude(op) is None:
                laws[0][cell(op, 0)] += 1 / choices
            else:
                for b in range(space.n_bins):
                    laws[0][cell(op, b)] += 1 / choices / space.n_bins
        for j in range(1, k):
            laws[j][NO_OP, -1] = 1.0
    else:
        raise TypeError(sampler)
    return laws


def _check_frequencies(observed: Counter, expected: dict, total: int, what: str) -> None:
    assert set(observed) <= {key for key, p in expected.items() if p > 0}, (what, set(observed) - set(expected))
    for key, p in expected.items():
        q = observed[key] / total
        se = math.sqrt(max(p * (1 - p), 1e-12) / total)
        assert abs(q - p) <= SE * se, (what, key, q, p)


def _check_signs_and_values(params, space) -> None:
    """Signed ops: each sign half the time; unsigned: +1; each value the space's for its bin and sign."""
    for op_id in np.unique(params.op[params.op >= 0]):
        name = list(OPS)[op_id]
        where = params.op == op_id
        magnitude = space.magnitude(name)
        signs = params.sign[where]
        if magnitude is not None and magnitude.signed:
            _check_frequencies(Counter({1: int((signs == 1).sum())}), {1: 0.5}, signs.size, f"{name} sign")
        else:
            assert np.all(signs == 1), name
        expected = [space.value(name, b, s) if b >= 0 else 0.0 for b, s in zip(params.bin[where], signs)]
        np.testing.assert_array_equal(params.value[where], expected, err_msg=name)


SAMPLERS = {
    "policy": lambda: Policy([[("ShearX", 9, 0.7), ("Equalize", 0, 0.3)], [("Rotate", 2), ("Posterize", 5, 0.5)]]),
    "autoaugment": lambda: autoaugment("imagenet"),
    "reduced_cifar10": lambda: autoaugment("reduced_cifar10"),
    "randaugment": lambda: RandAugment(num_ops=2, magnitude=17),
    "trivialaugment_wide": TrivialAugmentWide,
}


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("kind", list(SAMPLERS))
def test_each_slot_follows_the_policys_definition(kind, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setenv(sample_native.OFF, "1")
    elif not sample_native.available():
        pytest.skip("no C++ compiler here: the compiled sampler is not built")
    sampler = SAMPLERS[kind]()
    params = sample_policies([sampler], DRAWS, np.random.default_rng(3))
    laws = _slot_law(sampler, params.k)
    for j, law in enumerate(laws):
        observed = Counter(zip(params.op[:, j].tolist(), params.bin[:, j].tolist()))
        _check_frequencies(observed, law, DRAWS, f"{kind} slot {j}")
    _check_signs_and_values(params, sampler.space)


def test_a_schedule_epoch_draws_each_image_from_a_uniformly_chosen_policy():
    """``sample_mixture`` (PolicyAugment with a schedule): half the rows from each policy, each
    by its own law, padded to the most slots; partners inside the batch."""
    first, second = SAMPLERS["policy"](), RandAugment(num_ops=3, magnitude=4)
    params = sample_mixture([first, second], DRAWS, np.random.default_rng(4))
    _check_frequencies(Counter(params.policy.tolist()), {0: 0.5, 1: 0.5}, DRAWS, "policy choice")
    for m, sampler in enumerate((first, second)):
        rows = params.policy == m
        laws = _slot_law(sampler, params.k)
        for j, law in enumerate(laws):
            observed = Counter(zip(params.op[rows, j].tolist(), params.bin[rows, j].tolist()))
            _check_frequencies(observed, law, int(rows.sum()), f"policy {m} slot {j}")
    assert params.partner.min() >= 0 and params.partner.max() < DRAWS


def test_an_aws_distribution_draws_its_joint_pairs():
    """Each ordered pair of elements at p(e1) · p(e2 | e1) of a non-uniform distribution."""
    rng = np.random.default_rng(5)
    dist = AWSDistribution(rng.normal(0, 1.5, 36), rng.normal(0, 1.5, (36, 36)))
    params = sample_policies([dist], DRAWS, np.random.default_rng(6))
    pairs = dist.pairs_of(params)
    joint = dist.joint()
    observed = Counter(int(e1) * joint.shape[1] + int(e2) for e1, e2 in pairs)
    expected = {int(i): float(p) for i, p in enumerate(joint.ravel())}
    _check_frequencies(observed, expected, DRAWS, "AWS pair")
    _check_signs_and_values(params, dist.space)
