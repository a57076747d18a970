"""The fast CPU stage (``backend="native"``): the CUDA kernel sources built for the host with
OpenMP, one block per sample. It must equal the NumPy reference pixel for pixel (every op at
every bin: ``tests/test_stage.py``; here mixed slots, fill and the fused float output)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo_batch

from fastpolicy import OPS, reference, spaces
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.backends.protocol import normalization
from fastpolicy.sampling import complete


@pytest.fixture(scope="module")
def stage():
    return KernelPolicyStage.native()


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_mixed_slots_fill_and_fused_float_output(stage, grey):
    space = spaces.adversarial()
    ids = np.array([OPS[name].id for name in space.ops] + [-1])
    rng = np.random.default_rng(3)
    images = photo_batch(64, 45, 61, grey)
    for seed in range(3):
        params = complete(rng.choice(ids, (64, 3)), rng.integers(0, 10, (64, 3)), space, np.random.default_rng(seed))
        for fill in (128, 0):
            np.testing.assert_array_equal(
                stage.apply(images, params, fill=fill), reference.apply_batch(images, params, fill=fill)
            )
    mean, inv_std = normalization([0.5] * images.shape[3], [0.25] * images.shape[3])
    out = stage.apply(images, params, output="float32", mean=mean, inv_std=inv_std)
    want = (reference.apply_batch(images, params).astype(np.float32) - mean) * inv_std
    np.testing.assert_array_equal(out, want.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(stage.apply(images, None), images)


def test_the_native_build_refuses_a_multi_thread_launch():
    from fastpolicy.backends.kernel_build import NativeModule, native_module

    module = native_module()
    assert isinstance(module, NativeModule) and module.threads_per_block == 1
    kernel = module.get_function("fp_apply")
    with pytest.raises(ValueError, match="one thread per block"):
        kernel(
            (1, 1), (256,), [np.zeros(1, np.uint8)] * 3 + [np.int32(0)] + [None] * 2 + [np.int32(0)] * 5 + [None] * 9
        )
