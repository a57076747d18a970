"""PolicyDALILoader on the CPU: batch layout, policies per step without rebuilds, sharding, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastpolicy import OPS, AWSDistribution, Policy, reference
from fastpolicy.data import fashion_mnist

pytest.importorskip("nvidia.dali")
from fastpolicy.loader import Augment, Output, Pipeline, PolicyDALILoader, Sharding

M, N = 3, 4


def _policies(seed: int, count: int = M) -> list[Policy]:
    rng = np.random.default_rng(seed)
    return [Policy.random(rng) for _ in range(count)]


@pytest.fixture(scope="module")
def fmnist():
    images, labels = fashion_mnist.load("test")
    return images[:200], labels[:200]


def test_batch_layout_labels_and_policy_ids(photo_tree):
    loader = PolicyDALILoader(photo_tree, batch_size=N, M=M, image_size=40, policies=_policies(0))
    assert len(loader) == 20 // N
    batches = list(loader)
    assert len(batches) == 20 // N
    for batch in batches:
        images, labels, policy_ids = batch
        assert images.shape == (M * N, 3, 40, 40) and images.dtype == torch.float32
        assert labels.shape == policy_ids.shape == (M * N,)
        # copy m of image n sits at row m*N + n: same label, distinct policy ids, each id N times
        assert (labels.view(M, N) == labels[:N]).all()
        assert (policy_ids.view(M, N).cpu() == torch.arange(M)[:, None]).all()
        assert torch.equal(labels[:N], torch.as_tensor(loader.images_list.labels[batch.indices]))
        assert batch.version == 1 and (batch.params.policy == policy_ids.numpy()).all()


def test_policy_change_applies_next_batch_without_rebuild(fmnist):
    images, labels = fmnist
    loader = PolicyDALILoader.from_arrays(images, labels, batch_size=8, M=2, policies=_policies(1, 2), output="uint8")
    it = iter(loader)
    first = next(it)
    builds = loader.builds
    invert = Policy([[("Invert", 0), ("Invert", 0)]] * 5)  # applied twice: identity
    version = loader.set_policies([invert, Policy([[("Invert", 0)]])])
    second = next(it)
    assert second.version == version == first.version + 1
    assert set(second.params.op[:8].ravel()) == {OPS["Invert"].id}
    assert set(second.params.op[8:, 0]) == {OPS["Invert"].id} and set(second.params.op[8:, 1]) == {-1}
    assert not np.array_equal(first.params.op, second.params.op)
    loader.set_policies(None)
    plain = next(it)
    assert plain.params is None and plain.version == version + 1
    assert loader.builds == builds


@pytest.mark.parametrize("output", ["uint8", "float"])
@pytest.mark.parametrize("backend", ["native", "dali", "emulated", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_backends_equal_reference_backend(photo_tree, backend, output):
    """Same seed, same crops: every policy stage gives the reference's pixels for whole
    batches (the kernels also normalize and transpose in their last launch)."""
    device = "gpu" if backend == "cupy" else "cpu"
    loaders = [
        PolicyDALILoader(
            photo_tree,
            batch_size=N,
            M=M,
            image_size=36,
            device=device,
            policies=_policies(2),
            output=output,
            augment=Augment(backend=b),
            pipeline=Pipeline(seed=5),
        )
        for b in (backend, "numpy")
    ]
    pairs = list(zip(*loaders))
    assert len(pairs) == len(loaders[0]) == 20 // N
    for batch, ref_batch in pairs:
        assert torch.equal(batch.labels, ref_batch.labels)
        assert batch.params == ref_batch.params
        assert batch.images.dtype == ref_batch.images.dtype and batch.images.is_contiguous()
        assert torch.equal(batch.images.cpu(), ref_batch.images.cpu())


def test_backend_choice():
    with pytest.raises(ValueError, match="backend must be one of"):
        PolicyDALILoader.from_arrays(
            np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64), batch_size=2, augment=Augment(backend="opencv")
        )
    with pytest.raises(ValueError, match="runs on a CUDA GPU"):
        PolicyDALILoader.from_arrays(
            np.zeros((8, 4, 4), np.uint8),
            np.zeros(8, np.int64),
            batch_size=2,
            augment=Augment(backend="cupy"),
            device="cpu",
        )
    loader = PolicyDALILoader.from_arrays(
        np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64), batch_size=2, device="cpu"
    )
    assert loader.backend == "native"  # the fast CPU stage, where a C++ compiler is
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CXX", "no-such-compiler")
        loader = PolicyDALILoader.from_arrays(
            np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64), batch_size=2, device="cpu"
        )
        assert loader.backend == "dali"


def test_policy_stage_sees_the_baseline_crops(fmnist):
    """With baseline 'none' the copies are the dataset images and the output is the reference's."""
    images, labels = fmnist
    loader = PolicyDALILoader.from_arrays(
        images,
        labels,
        batch_size=16,
        M=2,
        output="uint8",
        policies=AWSDistribution(),
        augment=Augment(baseline="none"),
        pipeline=Pipeline(shuffle=False),
    )
    batch = next(iter(loader))
    originals = np.concatenate([images[batch.indices]] * 2)
    expected = reference.apply_batch(originals, batch.params)
    np.testing.assert_array_equal(batch.images.permute(0, 2, 3, 1).numpy(), expected)


@pytest.mark.parametrize("source", ["files", "arrays"])
def test_two_shards_cover_the_dataset_without_overlap(photo_tree, fmnist, source):
    seen = []
    for shard in range(2):
        if source == "files":
            loader = PolicyDALILoader(
                photo_tree,
                batch_size=3,
                M=1,
                image_size=16,
                sharding=Sharding(shard, 2),
                pipeline=Pipeline(drop_last=False),
            )
            total = 20
        else:
            loader = PolicyDALILoader.from_arrays(
                *fmnist, batch_size=16, M=1, sharding=Sharding(shard, 2), pipeline=Pipeline(drop_last=False)
            )
            total = 200
        indices = np.concatenate([batch.indices for batch in loader])
        assert len(indices) == len(set(indices.tolist())) == total // 2
        seen.append(set(indices.tolist()))
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == total


def test_epochs_reshuffle_and_reset(fmnist):
    loader = PolicyDALILoader.from_arrays(*fmnist, batch_size=32, M=1)
    assert len(loader) == 6
    first = np.concatenate([b.indices for b in loader])
    second = np.concatenate([b.indices for b in loader])
    assert loader.epoch == 2 and not np.array_equal(first, second)
    assert len(set(first.tolist())) == 6 * 32
    next(iter(loader))
    loader.reset()
    assert loader.epoch == 3 and loader.step == 0


@pytest.mark.parametrize("source", ["files", "arrays"])
def test_resume_continues_the_same_batches(photo_tree, fmnist, source):
    def make():
        if source == "files":
            return PolicyDALILoader(
                photo_tree, batch_size=N, M=2, image_size=24, policies=_policies(4, 2), pipeline=Pipeline(seed=3)
            )
        return PolicyDALILoader.from_arrays(
            *fmnist, batch_size=16, M=2, policies=AWSDistribution(), pipeline=Pipeline(seed=3)
        )

    reference_run = make()
    batches = [b for _ in range(2) for b in reference_run]
    interrupted = make()
    it = iter(interrupted)
    for _ in range(len(interrupted) - 2):
        next(it)
    state = interrupted.state_dict()
    resumed = make()
    resumed.set_policies(None)  # overwritten by the state
    resumed.load_state_dict(state)
    rest = [b for _ in range(2) for b in resumed][: len(batches) - (len(interrupted) - 2)]
    assert len(rest) == len(batches) - (len(interrupted) - 2) > 0
    for expected, got in zip(batches[len(interrupted) - 2 :], rest):
        assert (got.epoch, got.step) == (expected.epoch, expected.step)
        assert np.array_equal(got.indices, expected.indices)
        assert got.params == expected.params
        assert torch.equal(got.images, expected.images)


def test_from_arrays_validates_and_normalizes(fmnist):
    images, labels = fmnist
    with pytest.raises(TypeError, match="uint8"):
        PolicyDALILoader.from_arrays(images.astype(np.float32), labels, batch_size=4)
    with pytest.raises(ValueError, match="labels"):
        PolicyDALILoader.from_arrays(images, labels[:-1], batch_size=4)
    with pytest.raises(ValueError, match="fewer than one batch"):
        PolicyDALILoader.from_arrays(images, labels, batch_size=500)
    with pytest.raises(ValueError, match="policies for M=2"):
        PolicyDALILoader.from_arrays(images, labels, batch_size=4, M=2, policies=_policies(0, 3))
    loader = PolicyDALILoader.from_arrays(images[..., 0], labels, batch_size=100, M=1, augment=Augment(baseline="none"))
    batch = next(iter(loader))
    assert batch.images.shape == (100, 1, 28, 28)
    assert abs(batch.images.mean().item()) < 0.2 and abs(batch.images.std().item() - 1) < 0.2


def test_file_loader_rejects_array_baselines(photo_tree):
    for baseline in ("pad_crop", "none"):
        with pytest.raises(ValueError, match="in-memory arrays"):
            PolicyDALILoader(photo_tree, batch_size=2, M=1, augment=Augment(baseline=baseline))


def test_normalization_rejects_zero_std():
    with pytest.raises(ValueError, match="positive stds"):
        PolicyDALILoader.from_arrays(
            np.zeros((8, 4, 4), np.uint8),
            np.zeros(8, np.int64),
            batch_size=2,
            device="cpu",
            output=Output(mean=(0.5,), std=(0.0,)),
        )
    loader = PolicyDALILoader.from_arrays(
        np.zeros((8, 4, 4), np.uint8), np.zeros(8, np.int64), batch_size=2, device="cpu"
    )  # constant data: std from the data is 0, so only centred
    assert np.isfinite(loader.output_spec.pixel_normalization(1)[1]).all()


def test_policies_by_name_and_file(fmnist, tmp_path):
    from fastpolicy.policies import RandAugment, autoaugment

    loader = PolicyDALILoader.from_arrays(*fmnist, batch_size=8, M=2, policies="randaugment")
    assert loader.policies == [RandAugment()] * 2
    path = tmp_path / "aa.json"
    autoaugment("svhn").save(path)
    loader.set_policies(str(path))
    assert loader.policies == [autoaugment("svhn")] * 2
    batch = next(iter(loader))
    assert batch.params.n == 16 and batch.version == 2
    with pytest.raises(FileNotFoundError, match="neither a standard policy"):
        loader.set_policies("no-such-policy")


def test_a_schedule_is_followed_epoch_by_epoch(fmnist, tmp_path):
    from fastpolicy.schedule import PolicySchedule

    images, labels = fmnist
    invert, equalize = Policy([[("Invert", 0)]]), Policy([[("Equalize", 0)]])
    schedule = PolicySchedule([[invert], [equalize, invert]])
    path = tmp_path / "schedule.json"
    schedule.save(path)
    loader = PolicyDALILoader.from_arrays(images[:32], labels[:32], batch_size=16, M=2, policies=str(path))
    ops = []
    for _ in range(4):  # epochs 0, 1, then past the end: epoch 1's policies
        ops.append(
            [sorted({int(o) for o in batch.params.op[batch.params.policy == m, 0]}) for batch in loader for m in (0, 1)]
        )
    assert ops[0] == [[OPS["Invert"].id]] * 4
    assert ops[1] == ops[2] == ops[3] == [[OPS["Equalize"].id], [OPS["Invert"].id]] * 2
    with pytest.raises(ValueError, match="multiple of 3"):  # refused when set, not at the next epoch
        loader.set_policies(PolicySchedule([[invert], [invert, equalize, invert]]))
    assert loader.schedule is not None  # the schedule followed before is kept
    loader.set_policies(None)  # a plain policy (or none) stops following the schedule
    assert loader.schedule is None and next(iter(loader)).params is None


def test_reprs_say_what_they_hold(fmnist):
    from fastpolicy.schedule import PolicySchedule
    from fastpolicy.transforms import PolicyAugment

    images, labels = fmnist
    loader = PolicyDALILoader.from_arrays(images[:32], labels[:32], batch_size=16, M=2, policies="autoaugment")
    text = repr(loader)
    assert text.startswith("PolicyDALILoader(32 array images, N=16, M=2, S=28×28, device=cpu")
    assert "policies: Policy[autoaugment] of 25 sub-policies (version 1)" in text and "epoch 0 step 0" in text
    assert repr(AWSDistribution()).startswith("AWSDistribution(factorized, 36 elements, entropy 7.17 nats of 7.17")
    assert "object at 0x" not in repr(PolicyAugment(AWSDistribution()))
    assert repr(PolicySchedule([_policies(0, 2), _policies(1, 2)])) == "PolicySchedule(2 epochs × 2 policies)"


def test_a_pickled_loader_is_rebuilt_with_its_settings_and_position(fmnist, photo_tree):
    import pickle

    images, labels = fmnist
    loader = PolicyDALILoader.from_arrays(images[:64], labels[:64], batch_size=16, M=2, policies="rand-m9-mstd0.5")
    first = iter(loader)
    next(first)
    copy = pickle.loads(pickle.dumps(loader))
    assert repr(copy) == repr(loader) and "step 1" in repr(copy)
    ours, theirs = next(first), next(iter(copy))
    assert torch.equal(ours.images, theirs.images) and torch.equal(ours.labels, theirs.labels)
    assert ours.version == theirs.version and np.array_equal(ours.params.op, theirs.params.op)
    files = PolicyDALILoader(photo_tree, batch_size=4, M=2, image_size=32, policies="v0")
    assert f"from {photo_tree}" in repr(files)
    assert repr(pickle.loads(pickle.dumps(files))) == repr(files)
