"""The DALI policy stage against the NumPy reference, exact on the CPU: mixed batches, partial
batches, training sizes (every op at every bin on every backend: ``tests/test_stage.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import crop, photo_batch, photos

from fastpolicy import OP_NAMES, OPS, reference, spaces
from fastpolicy.sampling import complete

pytest.importorskip("nvidia.dali")
from fastpolicy.backends.dali_stage import DaliPolicyStage

HEIGHT, WIDTH, BATCH = 57, 91, 24


def _batch(grey: bool) -> np.ndarray:
    """BATCH odd-sized crops of real photos at varied offsets (uint8 NHWC)."""
    return photo_batch(BATCH, HEIGHT, WIDTH, grey)


@pytest.fixture(scope="module", params=["rgb", "grey"])
def stage_and_images(request):
    grey = request.param == "grey"
    return DaliPolicyStage(BATCH, HEIGHT, WIDTH, channels=1 if grey else 3), _batch(grey)


def test_mixed_batches_two_slots_no_rebuild(stage_and_images):
    """Random op pairs (all ops, skips included) over several batches; parameters never rebuild."""
    stage, images = stage_and_images
    rng = np.random.default_rng(7)
    space = spaces.adversarial()
    for _ in range(3):
        op = rng.integers(-1, len(OP_NAMES), (BATCH, 2))
        params = complete(op, rng.integers(0, 10, (BATCH, 2)), space, rng)
        np.testing.assert_array_equal(stage.apply(images, params), reference.apply_batch(images, params))
    assert stage.builds == 1


def test_partial_batch_and_input_untouched():
    images = _batch(False)[:5]
    before = images.copy()
    stage = DaliPolicyStage(BATCH, HEIGHT, WIDTH)
    rng = np.random.default_rng(1)
    params = complete(rng.integers(0, len(OP_NAMES), (5, 2)), rng.integers(0, 10, (5, 2)), spaces.adversarial(), rng)
    np.testing.assert_array_equal(stage.apply(images, params), reference.apply_batch(images, params))
    np.testing.assert_array_equal(images, before)


def test_stage_rejects_mismatched_input():
    stage = DaliPolicyStage(4, HEIGHT, WIDTH, pairing=False)
    rng = np.random.default_rng(0)
    params = complete(np.full((4, 2), OPS["SamplePairing"].id), np.zeros((4, 2), int), spaces.adversarial(), rng)
    with pytest.raises(ValueError, match="shape"):
        stage.apply(np.zeros((4, HEIGHT + 1, WIDTH, 3), np.uint8), params)
    with pytest.raises(ValueError, match="SamplePairing"):
        stage.apply(np.zeros((4, HEIGHT, WIDTH, 3), np.uint8), params)
    with pytest.raises(ValueError, match="channels"):
        DaliPolicyStage(4, HEIGHT, WIDTH, channels=2)


def test_every_op_has_a_dali_implementation():
    import fastpolicy.backends.dali_ops  # noqa: F401  (attaches them)

    assert all("dali" in spec.backends for spec in OPS.values())


@pytest.mark.parametrize("size", [(224, 224), (32, 32)])
def test_geometric_ops_exact_at_training_sizes(size):
    """The fixed-point matrix keeps DALI's float warp on PIL's pixels at the loader's sizes too."""
    height, width = size
    images = np.stack([crop(p, height, width) for n, p in photos().items() if n != "camera_grey"])
    stage = DaliPolicyStage(len(images) * 5, height, width)
    batch = np.concatenate([images] * 5)
    rng = np.random.default_rng(3)
    affine = [OPS[n].id for n in OP_NAMES if OPS[n].kind == "affine"]
    op = np.stack([np.repeat(affine, len(images)), np.full(len(batch), -1)], axis=1)
    params = complete(op, rng.integers(0, 10, op.shape), spaces.adversarial(), rng)
    np.testing.assert_array_equal(stage.apply(batch, params), reference.apply_batch(batch, params))
