"""The one stage protocol: every backend, dtype and layout against the reference; the one packer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo_batch

from fastpolicy import OPS, Policy
from fastpolicy.backends.pack import pack
from fastpolicy.backends.stage import DTYPES, OutputSpec, finish, make_stage
from fastpolicy.params import NO_OP
from fastpolicy.policies import autoaugment, randaugment, trivialaugment_wide
from fastpolicy.reference import apply_batch
from fastpolicy.sampling import sample_policies

N, HEIGHT, WIDTH = 16, 20, 24
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU_BACKENDS = ["numpy", "native", "emulated", "dali"]


def _params(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    return sample_policies([Policy.random(rng) for _ in range(4)], n // 4, rng)


def _spec(dtype: str, layout: str, channels: int = 3) -> OutputSpec:
    if dtype == "uint8":
        return OutputSpec(dtype, layout)
    return OutputSpec(
        dtype, layout, MEAN[:channels] if channels == 3 else (0.5,), STD[:channels] if channels == 3 else (0.25,)
    )


@pytest.fixture(scope="module")
def stages():
    pytest.importorskip("nvidia.dali")
    made = {}

    def get(backend: str, channels: int = 3):
        if (backend, channels) not in made:
            made[backend, channels] = make_stage(
                backend, "cpu", max_batch=N, height=HEIGHT, width=WIDTH, channels=channels, slots=2
            )
        return made[backend, channels]

    return get


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_every_backend_through_the_protocol_equals_the_reference(stages, backend, dtype, layout):
    images = photo_batch(N, HEIGHT, WIDTH)
    params = _params(1)
    spec = _spec(dtype, layout)
    expected = finish(torch.from_numpy(apply_batch(images, params)), spec)
    got = stages(backend).apply(torch.from_numpy(images), params, spec)
    assert got.shape == (N, 3, HEIGHT, WIDTH) and got.dtype == DTYPES[dtype]
    assert got.is_contiguous(memory_format=spec.memory_format)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_channels_last_equals_nchw_value_for_value(stages, backend):
    images = torch.from_numpy(photo_batch(N, HEIGHT, WIDTH, grey=True))
    params = _params(2)
    for dtype in DTYPES:
        nchw = stages(backend, 1).apply(images, params, _spec(dtype, "nchw", 1))
        last = stages(backend, 1).apply(images, params, _spec(dtype, "channels_last", 1))
        assert nchw.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(nchw, last)


@pytest.mark.parametrize("policy", [autoaugment, randaugment, trivialaugment_wide])
def test_standard_policies_through_the_native_stage_equal_the_reference(stages, policy):
    images = photo_batch(N, HEIGHT, WIDTH)
    params = sample_policies([policy()] * 2, N // 2, np.random.default_rng(3))
    spec = _spec("uint8", "nchw")
    assert torch.equal(
        stages("native").apply(torch.from_numpy(images), params, spec),
        finish(torch.from_numpy(apply_batch(images, params)), spec),
    )


def test_no_policy_only_converts(stages):
    images = torch.from_numpy(photo_batch(4, HEIGHT, WIDTH))
    spec = _spec("float32", "channels_last")
    for backend in ("numpy", "native"):
        assert torch.equal(stages(backend).apply(images, None, spec), finish(images, spec))


def test_output_spec_is_validated():
    with pytest.raises(ValueError, match="dtype"):
        OutputSpec("int8")
    with pytest.raises(ValueError, match="layout"):
        OutputSpec("uint8", "nhwc")
    with pytest.raises(ValueError, match="needs mean and std"):
        OutputSpec("float16")
    with pytest.raises(ValueError, match="positive stds"):
        OutputSpec("float32", "nchw", (0.5,), (0.0,))


def test_make_stage_refuses_cupy_on_the_cpu():
    with pytest.raises(ValueError, match="CUDA GPU"):
        make_stage("cupy", "cpu", max_batch=1, height=4, width=4)
    with pytest.raises(ValueError, match="backend must be one of"):
        make_stage("pil", "cpu", max_batch=1, height=4, width=4)


@pytest.mark.parametrize("fields", ["kernels", "dali"])
def test_the_packer_writes_every_slot_into_one_buffer(fields):
    params = _params(4)
    packed = pack(params, HEIGHT, WIDTH, fields)
    views = packed.views()
    assert len(views) == params.k and packed.buffer.ndim == 1
    for slot in views:
        for array in slot.values():
            assert np.shares_memory(array, packed.buffer)
    # one skip code: op -1 → index 0 of every per-op table
    skipped = params.op == NO_OP
    key = "code" if fields == "kernels" else "select"
    for k, slot in enumerate(views):
        assert np.all((slot[key] == 0) == skipped[:, k])
    if fields == "dali":
        assert np.array_equal(views[0]["select"], params.op[:, 0] + 1)


def test_the_packer_takes_an_allocator():
    params = _params(5)
    sizes = []

    def allocate(nbytes):
        sizes.append(nbytes)
        return np.zeros(nbytes, np.uint8)

    packed = pack(params, HEIGHT, WIDTH, allocate=allocate)
    assert sizes == [packed.buffer.nbytes] and sizes[0] % 16 == 0


def test_cutout_boxes_agree_between_kernel_and_dali_packing():
    params = _params(6)
    cut = params.op == OPS["Cutout"].id
    if not cut.any():
        params = sample_policies([Policy([[("Cutout", 9), ("Cutout", 4)]])], N, np.random.default_rng(0))
        cut = params.op == OPS["Cutout"].id
    kernels, dali = pack(params, HEIGHT, WIDTH).views(), pack(params, HEIGHT, WIDTH, "dali").views()
    for k in range(params.k):
        box = kernels[k]["box"]
        assert np.array_equal(dali[k]["anchor"], box[:, :2]) and np.array_equal(
            dali[k]["shape"], box[:, 2:] - box[:, :2]
        )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_copies_image_major_give_the_policy_major_result(stages, backend):
    """The loader's source yields [N, M, H, W, C] copies, image-major; sample m·N + n is copy m
    of image n, and the stage reads the copies in place."""
    copies = 2
    images = photo_batch(N, HEIGHT, WIDTH)
    assert N % copies == 0
    params = _params(7)
    spec = _spec("float32", "channels_last")
    # image-major: row n·M + m of the stacked copies holds sample m·(N/M) + n
    n = N // copies
    stacked = images.reshape(copies, n, HEIGHT, WIDTH, -1).transpose(1, 0, 2, 3, 4).copy()
    expected = finish(torch.from_numpy(apply_batch(images, params)), spec)
    got = stages(backend).apply(torch.from_numpy(stacked), params, spec)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    assert not torch.equal(got, finish(torch.from_numpy(apply_batch(stacked.reshape(images.shape), params)), spec))


def test_host_buffers_are_reused_only_when_no_view_is_left():
    import gc

    from fastpolicy.backends.stage import HostBuffers

    pool = HostBuffers(keep=2)
    first = pool.empty((4, 3, 8, 8), torch.float32)
    address = first.data_ptr()
    view = first[1:]
    del first
    gc.collect()
    second = pool.empty((4, 3, 8, 8), torch.float32)
    assert second.data_ptr() != address  # a view still holds the first buffer: not handed out again
    second.fill_(1.0)
    view.fill_(2.0)
    assert torch.all(second == 1.0)
    del view
    gc.collect()
    third = pool.empty((4, 3, 8, 8), torch.float32)
    assert third.data_ptr() == address  # the first buffer, back once its last view went
    wide = pool.empty((4, 3, 8, 8), torch.bfloat16)
    assert (
        wide.dtype == torch.bfloat16
        and wide.shape == (4, 3, 8, 8)
        and wide.data_ptr() not in (address, second.data_ptr())
    )
