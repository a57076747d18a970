"""The compiled sampler (``kernels/sample.cpp``) equals the NumPy sampler draw for draw, and
the NumPy path takes over where it cannot be built."""

from __future__ import annotations

import numpy as np
import pytest

from fastpolicy import Policy, sample_native
from fastpolicy.batch_seed import BatchSeed
from fastpolicy.policies import autoaugment
from fastpolicy.sampling import sample_policies

needs_compiler = pytest.mark.skipif(not sample_native.available(), reason="no C++ compiler: nothing compiled")


def _both(samplers, n: int, seed: int, slots, monkeypatch):
    """(NumPy parameters, its Generator), (compiled parameters, its Generator) from one seed."""
    out = []
    for value in ("1", "0"):
        monkeypatch.setenv(sample_native.OFF, value)
        rng = np.random.default_rng(seed)
        out.append((sample_policies(samplers, n, rng, version=3, slots=slots), rng))
    return out


@needs_compiler
@pytest.mark.parametrize("n", [1, 2, 3, 32, 257])
def test_the_compiled_sampler_draws_what_numpy_draws(n, monkeypatch):
    """Random Adversarial-AutoAugment policies (M = 8, and one), AutoAugment's tables with their
    probabilities (M = 1, 8; padded slots), one-sub-policy policies (no sub-policy draw) and
    one-image batches (no partner draw): the same parameters and the same Generator state
    after them."""
    rng = np.random.default_rng(n)
    cases = [
        ([Policy.random(rng) for _ in range(8)], None),
        ([Policy.random(rng)], None),
        ([autoaugment("imagenet")] * 8, 3),
        ([autoaugment("reduced_cifar10")], None),
        ([Policy([[("Rotate", 3), ("Cutout", 9)]])] * 2, None),
        ([Policy([[("SamplePairing", 5, 0.5)], [("Invert", 0)]], space="adversarial")] * 3, 2),
    ]
    for samplers, slots in cases:
        for seed in range(6):
            (numpy_params, numpy_rng), (native_params, native_rng) = _both(samplers, n, seed, slots, monkeypatch)
            assert native_params == numpy_params
            assert native_rng.bit_generator.state == numpy_rng.bit_generator.state
            assert native_rng.random() == numpy_rng.random()
            native_params.validate()  # what the compiled path skips holds


@needs_compiler
@pytest.mark.parametrize(
    "entropy",
    [(0, 0, 1, 0, 0), (7, 3, 1, 2, 5), (2**32, 0, 1, 0, 9), (2**70 + 5, 1, 1, 3, 4), (0,), (1, 2, 3, 4, 5, 6, 7)],
)
def test_a_batch_seed_draws_what_its_generator_draws(entropy, monkeypatch):
    """The compiled sampler seeds numpy's PCG64 itself (SeedSequence's mixing, PCG64's seeding)
    from a BatchSeed — big integers (several words), zeros, entropy longer than the pool — with
    no Generator made: the parameters of ``default_rng(entropy)``, and the Generator made after
    continues where those draws stopped (the loader's final slots draw from it)."""
    monkeypatch.delenv(sample_native.OFF, raising=False)
    for samplers, slots, n in (
        ([autoaugment("imagenet")] * 8, 2, 32),
        ([Policy.random(np.random.default_rng(1))], 3, 5),
    ):
        seed = BatchSeed(*entropy)
        params = sample_policies(samplers, n, seed, version=2, slots=slots)
        assert not seed.drawn  # drawn without making the Generator
        rng = np.random.default_rng(list(entropy))
        assert params == sample_policies(samplers, n, rng, version=2, slots=slots)
        assert seed.generator().bit_generator.state == rng.bit_generator.state
        assert seed.generator().random(4).tolist() == rng.random(4).tolist()


@needs_compiler
def test_a_batch_seeds_second_draw_continues_the_first(monkeypatch):
    """Two draws from one BatchSeed: the second continues where the first stopped (through the
    generator, restored to that state), as two draws from one Generator do."""
    monkeypatch.delenv(sample_native.OFF, raising=False)
    policies = [autoaugment()] * 4
    seed, rng = BatchSeed(5, 0, 1, 3, 9), np.random.default_rng([5, 0, 1, 3, 9])
    for n in (8, 3):
        assert sample_policies(policies, n, seed, slots=2) == sample_policies(policies, n, rng, slots=2)
    assert seed.generator().bit_generator.state == rng.bit_generator.state


def test_a_batch_seed_makes_its_generator_for_numpy_draws(monkeypatch):
    """Without the compiled sampler (or for samplers it does not draw), a BatchSeed's draws come
    from its Generator: the same parameters; entropy numpy refuses is refused by name."""
    monkeypatch.setenv(sample_native.OFF, "1")
    seed = BatchSeed(3, 0, 1, 2, 7)
    params = sample_policies([autoaugment()] * 2, 6, seed)
    assert seed.drawn
    assert params == sample_policies([autoaugment()] * 2, 6, np.random.default_rng([3, 0, 1, 2, 7]))
    with pytest.raises(ValueError, match="non-negative integers, got -1"):
        BatchSeed(0, -1)
    with pytest.raises(TypeError):
        BatchSeed(0, 1.5)


def test_numpy_samples_without_a_compiler(monkeypatch):
    """No compiler: one warning, then the NumPy path's draws."""
    monkeypatch.setattr(sample_native._HELPER, "loaded", [])
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.delenv(sample_native.OFF, raising=False)
    with pytest.warns(RuntimeWarning, match="compiled sampler is unavailable"):
        assert not sample_native.available()
    policies = [autoaugment()] * 4
    params = sample_policies(policies, 16, np.random.default_rng(1))
    monkeypatch.setenv(sample_native.OFF, "1")
    assert params == sample_policies(policies, 16, np.random.default_rng(1))


@needs_compiler
def test_many_policy_sets_keep_their_tables_alive(monkeypatch):
    """More policy sets than the kept inputs (the caches are cleared on the way): a set sampled
    again still reads its own tables (its call keeps the arrays its pointers point into)."""
    rng = np.random.default_rng(9)
    sets = [[Policy.random(rng) for _ in range(2)] for _ in range(80)]
    for samplers in sets:
        sample_policies(samplers, 4, np.random.default_rng(0))
    import gc

    gc.collect()
    for samplers in sets[:5]:
        (numpy_params, _), (native_params, _) = _both(samplers, 4, 1, None, monkeypatch)
        assert native_params == numpy_params
    for arguments, *_, kept in sample_native._CALLS.values():  # each call holds what it points into
        held = {array.ctypes.data for array in kept[-1]}
        assert {int(p) for p in (*arguments[5:8], *arguments[10:13])} <= held


@needs_compiler
def test_edges_the_compiled_sampler_refuses_or_leaves_to_numpy(monkeypatch):
    """Bins past int8 are refused by name on both paths (no wrapped values); an empty table and
    fewer slots than the table's are left to the NumPy path, which raises."""
    from fastpolicy.policies import RandAugment, TrivialAugmentWide
    from fastpolicy.sampling import SubPolicyTables

    with pytest.raises(ValueError, match=r"num_magnitude_bins must be an integer in 2..128"):
        TrivialAugmentWide(num_magnitude_bins=200)
    for sampler in (RandAugment(2, 127, 128), TrivialAugmentWide(num_magnitude_bins=128)):
        (numpy_params, _), (native_params, _) = _both([sampler], 64, 3, None, monkeypatch)
        assert native_params == numpy_params and native_params.bin.max() <= 127

    class Empty:
        space = autoaugment().space
        n_ops = 2
        sub_policy_tables = SubPolicyTables(np.zeros((0, 2), np.int64), np.zeros((0, 2), np.int64), np.zeros((0, 2)))

    monkeypatch.setenv(sample_native.OFF, "0")
    with pytest.raises(ValueError, match="high <= 0"):
        sample_policies([Empty()], 4, np.random.default_rng(0))
    policy = autoaugment()
    with pytest.raises(ValueError, match="only 1 slots"):
        sample_policies([policy], 4, np.random.default_rng(0), slots=1)
