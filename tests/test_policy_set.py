"""The policy set: versions, validation, and parameters drawn exactly as the loader always drew
them (policy slots, magnitude scale, then the Cutout slot from the same generator)."""

from __future__ import annotations

import numpy as np
import pytest

from fastpolicy import OPS, AWSDistribution, Policy
from fastpolicy.loader.policy_set import AHEAD, FinalSlot, PolicySet
from fastpolicy.params import NO_OP, PolicyParams
from fastpolicy.sampling import sample_policies, share_equal

M, SEED, SHARD = 3, 7, 1


def _policies(seed: int, count: int = M) -> list[Policy]:
    rng = np.random.default_rng(seed)
    return [Policy.random(rng) for _ in range(count)]


def _by_hand(samplers, n: int, epoch: int, step: int, scale: float, cutout: float | None, version: int):
    """The parameters as the loader drew them before the policy set: sample_policies, scaled,
    then one more slot of Cutout whose centres are the generator's next draw."""
    rng = np.random.default_rng([SEED, SHARD, 1, epoch, step])
    rows = M * n
    if samplers is None:
        if cutout is None:
            return None
        arrays = {
            "op": np.full((rows, 2), NO_OP),
            "bin": np.full((rows, 2), -1),
            "sign": np.ones((rows, 2)),
            "value": np.zeros((rows, 2)),
            "center": np.zeros((rows, 2, 2)),
            "partner": np.zeros((rows, 2), np.int64),
            "policy": np.repeat(np.arange(M), n),
        }
    else:
        params = sample_policies(share_equal(samplers), n, rng, version=version, slots=2)
        params = params if scale == 1 else params.scaled(scale)
        if cutout is None:
            return params
        arrays = params.arrays()
    extra = {"op": OPS["Cutout"].id, "bin": -1, "sign": 1, "value": cutout, "partner": 0}
    for name, value in extra.items():
        arrays[name] = np.concatenate([arrays[name], np.full((rows, 1), value, arrays[name].dtype)], axis=1)
    arrays["center"] = np.concatenate([arrays["center"], rng.random((rows, 1, 2))], axis=1)
    return PolicyParams(**arrays, version=version)


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("cutout", [None, 0.25])
@pytest.mark.parametrize("kind", ["policies", "aws", "none"])
def test_sampling_equals_the_loaders_former_draws(kind, cutout, scale):
    final = () if cutout is None else (FinalSlot("Cutout", cutout),)
    policy_set = PolicySet(M, 2, SEED, SHARD, scale, final)
    samplers = {"policies": _policies(0), "aws": [AWSDistribution()] * M, "none": None}[kind]
    version = policy_set.set(samplers)
    assert policy_set.slots == 2 + len(final)
    for epoch, step, n in [(0, 0, 8), (0, 5, 3), (2, 1, 8)]:
        got, got_version = policy_set.sample(n, epoch, step)
        expected = _by_hand(samplers, n, epoch, step, scale, cutout, version)
        assert got_version == version
        if expected is None:
            assert got is None
            continue
        assert got == expected and got.k == policy_set.slots and got.n == M * n
        if cutout is not None:
            assert set(got.op[:, -1]) == {OPS["Cutout"].id} and set(got.value[:, -1]) == {cutout}


def test_steps_drawn_ahead_are_the_steps_own_parameters(monkeypatch):
    """Asked for in order under the same policies, ``sample`` draws AHEAD steps together and
    hands the later ones out: each is exactly its own step's draw; a step asked for again, out
    of order, with another n or after a change of policies is drawn alone, anew."""
    policy_set = PolicySet(M, 2, SEED, SHARD, final=(FinalSlot("Cutout", 0.25),))
    samplers = _policies(2)
    version = policy_set.set(samplers)
    draws = []
    draw = policy_set._draw
    monkeypatch.setattr(policy_set, "_draw", lambda *args: draws.append(args[1:]) or draw(*args))
    for step in range(2 * AHEAD + 1):  # an epoch's order: step 0 alone, then AHEAD steps per draw
        got, got_version = policy_set.sample(4, 3, step)
        assert got == _by_hand(samplers, 4, 3, step, 1.0, 0.25, version) and got_version == version
    assert draws == [(4, 3, step) for step in range(2 * AHEAD + 1)]
    assert policy_set.sample(4, 3, 2)[0] == _by_hand(samplers, 4, 3, 2, 1.0, 0.25, version)  # again: drawn
    assert policy_set.sample(2, 3, 3)[0] == _by_hand(samplers, 2, 3, 3, 1.0, 0.25, version)  # other n: drawn
    assert len(draws) == 2 * AHEAD + 3
    policy_set.sample(4, 5, 0)
    policy_set.sample(4, 5, 1)  # keeps steps 2 … AHEAD of epoch 5
    changed = _policies(3)
    new_version = policy_set.set(changed)
    assert policy_set._ahead == {}  # nothing kept outlives the policies it was drawn under
    got, got_version = policy_set.sample(4, 5, 2)
    assert got_version == new_version and got == _by_hand(changed, 4, 5, 2, 1.0, 0.25, new_version)
    policy_set.sample(4, 5, 3)  # in order again: drawn with the next ones
    kept = policy_set.sample(4, 5, 4)[0]
    again = policy_set.sample(4, 5, 4)[0]  # handed out once: drawn anew
    assert kept == again and kept is not again
    assert policy_set.draw(4, 5, 9) == (_by_hand(changed, 4, 5, 9, 1.0, 0.25, new_version), new_version)
    policy_set.sample(4, 8, 0)
    policy_set.sample(4, 8, 1)  # keeps steps 2 … AHEAD of epoch 8
    restored = _policies(6)
    policy_set.restore([p.to_dict() for p in restored], 40)
    assert policy_set.sample(4, 8, 2) == (_by_hand(restored, 4, 8, 2, 1.0, 0.25, 40), 40)


def test_drawing_ahead_stops_at_the_epochs_end_and_at_a_change_per_batch(monkeypatch):
    policy_set = PolicySet(M, 2, SEED, SHARD)
    policy_set.set(_policies(4))
    draws = []
    draw = policy_set._draw
    monkeypatch.setattr(policy_set, "_draw", lambda *args: draws.append(args[3]) or draw(*args))
    for step in range(4):  # an epoch of 4 batches
        policy_set.sample(4, 6, step, steps=4)
    assert draws == [0, 1, 2, 3]  # step 1 drew steps 1-3, none past the epoch
    draws.clear()
    for step in range(5):  # a controller updated at every batch: one draw per batch
        policy_set.set(_policies(10 + step))
        policy_set.sample(4, 7, step)
    assert draws == [0, 1, 2, 3, 4]


def test_the_loader_draws_no_step_past_its_epoch(monkeypatch):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.loader import PolicyDALILoader

    images = np.random.default_rng(0).integers(0, 256, (24, 8, 8, 3), np.uint8)
    loader = PolicyDALILoader.from_arrays(images, np.arange(24) % 3, 8, M=2, device="cpu", policies=_policies(5, 2))
    draws = []
    draw = loader.policy_set._draw
    monkeypatch.setattr(loader.policy_set, "_draw", lambda *args: draws.append(args[2:]) or draw(*args))
    assert len(list(loader)) == len(loader) == 3
    assert draws == [(0, 0), (0, 1), (0, 2)]


def test_same_position_same_parameters_other_position_other_parameters():
    policy_set = PolicySet(M, 2, SEED, SHARD, final=(FinalSlot("Cutout", 0.5),))
    policy_set.set(_policies(1))
    first, again, other = policy_set.sample(4, 1, 2)[0], policy_set.sample(4, 1, 2)[0], policy_set.sample(4, 1, 3)[0]
    assert first == again and not np.array_equal(first.center, other.center)


def test_versions_and_validation():
    policy_set = PolicySet(2, 1, 0, 0)
    assert policy_set.version == 0 and policy_set.policies is None
    invert = Policy([[("Invert", 0)]])
    assert policy_set.set(invert) == 1 and policy_set.policies == [invert, invert]
    with pytest.raises(ValueError, match="got 3 policies for M=2"):
        policy_set.set([invert] * 3)
    with pytest.raises(TypeError, match=r"policies\[1\] is a str"):
        policy_set.set([invert, "x"])
    with pytest.raises(ValueError, match="policies apply 2 ops per sample; the loader was built with slots=1"):
        policy_set.set(AWSDistribution())
    assert policy_set.version == 1  # refused sets change nothing
    with pytest.raises(ValueError, match="unknown op"):
        FinalSlot("Blur", 0.5)


def test_state_round_trip():
    policy_set = PolicySet(M, 2, SEED, SHARD)
    policy_set.set(_policies(2))
    policies, version = policy_set.state()
    restored = PolicySet(M, 2, SEED, SHARD)
    restored.restore(policies, version)
    assert restored.version == version and restored.sample(4, 0, 0)[0] == policy_set.sample(4, 0, 0)[0]
    restored.restore(None, 9)
    assert restored.policies is None and restored.sample(4, 0, 0) == (None, 9)
