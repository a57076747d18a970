"""The overlapped loader: the same batches as the synchronous one; when set_policies takes effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastpolicy import OPS, Policy
from fastpolicy.data import fashion_mnist
from fastpolicy.policies import autoaugment

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Augment, Pipeline, PolicyDALILoader

M = 2


@pytest.fixture(scope="module")
def fmnist():
    images, labels = fashion_mnist.load("test")
    return images[:96], labels[:96]


def _policies(seed: int) -> list[Policy]:
    rng = np.random.default_rng(seed)
    return [Policy.random(rng) for _ in range(M)]


def _loader(fmnist, prefetch: int, backend: str = "emulated", output: str = "float") -> PolicyDALILoader:
    return PolicyDALILoader.from_arrays(
        *fmnist,
        batch_size=16,
        M=M,
        device="cpu",
        policies=_policies(0),
        output=output,
        augment=Augment(cutout=6, backend=backend),
        pipeline=Pipeline(seed=5, prefetch=prefetch),
    )


def _same(a, b) -> None:
    assert (a.epoch, a.step, a.version) == (b.epoch, b.step, b.version)
    assert np.array_equal(a.indices, b.indices) and a.params == b.params
    assert torch.equal(a.labels, b.labels) and torch.equal(a.policy_ids, b.policy_ids)
    assert torch.equal(a.images, b.images)


def _run(loader: PolicyDALILoader) -> list:
    """Two epochs; policies change mid-epoch (after step 2) and at the epoch boundary."""
    batches = []
    for epoch in range(2):
        for step, batch in enumerate(loader):
            batches.append(batch)
            if step == 2:
                loader.prefetcher.wait()  # the next batch is ready (with the old policies) ...
                loader.set_policies(_policies(10 + epoch))  # ... when they change
        loader.set_policies([autoaugment()] * M)
    loader.close()
    return batches


@pytest.mark.parametrize("backend", ["emulated", "native"])
def test_prefetching_yields_exactly_the_synchronous_batches(fmnist, backend):
    synchronous, overlapped = _loader(fmnist, 0, backend), _loader(fmnist, 1, backend)
    expected, got = _run(synchronous), _run(overlapped)
    assert len(expected) == len(got) == 2 * len(synchronous)
    for a, b in zip(expected, got):
        _same(a, b)
    # the batch prepared ahead across the mid-epoch change was re-augmented, not handed out stale
    assert overlapped.timings.seconds.get("reaugment", 0) > 0
    assert "reaugment" not in synchronous.timings.seconds


def test_a_change_at_the_epoch_boundary_covers_the_whole_next_epoch(fmnist):
    loader = _loader(fmnist, 1, "native", output="uint8")
    first = list(loader)
    version = loader.set_policies([Policy([[("Invert", 0)]])] * M)
    second = list(loader)
    assert len(first) == len(second) == 6
    assert {b.version for b in first} == {1} and {b.version for b in second} == {version}
    invert, cutout = OPS["Invert"].id, OPS["Cutout"].id
    for batch in second:
        assert set(np.unique(batch.params.op)) <= {invert, cutout, -1}
    loader.close()


def test_rewards_are_credited_to_the_version_that_augmented_the_batch(fmnist):
    """An adversarial-style consumer: per-version loss sums from batch.version, with a
    policy change mid-epoch while a batch is prepared ahead."""
    loader = _loader(fmnist, 1, "native", output="uint8")
    credited: dict[int, list[int]] = {}
    versions = [loader.version]
    for step, batch in enumerate(loader):
        credited.setdefault(batch.version, []).append(step)
        # the parameters really are the ones the version's policies produce: Invert-only after the switch
        if batch.version == versions[-1] and len(versions) > 1:
            assert set(np.unique(batch.params.op[:, 0])) == {OPS["Invert"].id}
        if step == 1:
            versions.append(loader.set_policies([Policy([[("Invert", 0)]])] * M))
    assert credited == {versions[0]: [0, 1], versions[1]: list(range(2, len(loader)))}
    loader.close()


def test_resume_mid_epoch_with_a_batch_prepared_ahead(fmnist):
    reference_run = _loader(fmnist, 0, "native")
    batches = list(reference_run)
    interrupted = _loader(fmnist, 1, "native")
    it = iter(interrupted)
    next(it), next(it)  # batch 2 is being prepared ahead now
    state = interrupted.state_dict()
    interrupted.close()
    resumed = _loader(fmnist, 1, "native")
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(batches) == 6 and len(rest) == 4
    for expected, got in zip(batches[2:], rest):
        _same(expected, got)
    resumed.close()


def test_prefetch_is_validated(fmnist):
    with pytest.raises(ValueError, match="prefetch"):
        _loader(fmnist, 2)


def test_closing_mid_epoch_keeps_the_batch_prepared_ahead(fmnist):
    synchronous = list(_loader(fmnist, 0, "native"))
    loader = _loader(fmnist, 1, "native")
    it = iter(loader)
    first = next(it)  # batch 1 is being prepared ahead
    loader.close()
    rest = list(it)  # the iteration goes on (a new worker where needed)
    loader.close()
    assert len(synchronous) == 6 and len(rest) + 1 == len(synchronous) and loader.epoch == 1
    for expected, got in zip(synchronous, [first, *rest]):
        _same(expected, got)
