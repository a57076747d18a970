"""Runs of pixels per thread (``kernels/runs.cuh``) and the int32 warp's guard.

The device loops compute FP_RUN pixels of a row per thread and store them as words or
vectors where the run is full and aligned, else pixel by pixel; warps compute in int32 where
the packer's guard proves it exact (``narrow_warp``), else in int64 (``apply_warp_wide``).
Both paths of each, on the emulated build (the device code), fused and slot by slot, and on
a GPU (where a misaligned vector access faults), equal the NumPy reference.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import photo_batch

from fastpolicy import OPS, reference, spaces
from fastpolicy.backends import kernel_pack, kernel_stage
from fastpolicy.backends.kernel_build import emulated_module
from fastpolicy.backends.kernel_ops import APPLY_FUNCTIONS, KERNEL_DIR, RUN, WIDE_WARP
from fastpolicy.backends.kernel_pack import OpTable, narrow_warp
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.backends.protocol import normalization
from fastpolicy.sampling import complete

OUTPUTS = ["uint8", "float32", "float16", "bfloat16"]


@pytest.fixture(scope="module", params=["fused", "slots", pytest.param("cupy", marks=pytest.mark.gpu)])
def stage(request):
    if request.param == "cupy":
        from fastpolicy.backends.kernel_cuda import device_stage

        return device_stage(0)
    return KernelPolicyStage.emulated(fused=request.param == "fused")


def _host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _expected(want: np.ndarray, output: str, layout: str, mean, inv_std) -> np.ndarray:
    if output != "uint8":
        values = (want.astype(np.float32) - mean) * inv_std
        if output == "bfloat16":  # round to nearest even on the float32 bits, as torch does
            bits = values.view(np.uint32)
            want = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        else:
            want = values.astype(output)
    return want.transpose(0, 3, 1, 2) if layout == "nchw" else want


def _buffer(xp, shape, dtype, offset: int, poison: int):
    """A C-contiguous array of ``xp`` (NumPy or CuPy) of ``shape``, every byte ``poison``,
    starting ``offset`` elements into a 64-byte aligned block."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    block = xp.empty(count + offset + 64 // dtype.itemsize, dtype)
    block.view(np.uint8)[...] = poison
    address = block.data.ptr if hasattr(block.data, "ptr") else block.ctypes.data
    start = (-address % 64) // dtype.itemsize + offset
    return block[start : start + count].reshape(shape)


CASES = {  # (height, width, output offset in elements)
    "full-aligned-runs": (7, 24, 0),
    "misaligned-output": (7, 24, 1),
    "partial-runs": (7, 26, 0),
    "many-runs-per-thread": (20, 60, 0),  # 300 runs a sample: fp_policy's 256 threads loop
}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_output_of_full_partial_and_misaligned_runs_equals_the_reference(
    stage, monkeypatch, output, layout, grey, case
):
    height, width, offset = CASES[case]
    monkeypatch.setattr(kernel_stage, "_APPLY_BLOCKS", 1)  # fp_apply: one block, each thread several runs
    images = photo_batch(6, height, width, grey)
    n, h, w, c = images.shape
    rng = np.random.default_rng(width + offset)
    names = ["Solarize", "Rotate", "Equalize", "Color", "Cutout", "SamplePairing"]  # pointwise and gathers
    op = np.array([[OPS[a].id, OPS[b].id] for a, b in zip(names, names[1:] + names[:1])])
    params = complete(op, rng.integers(1, 10, (n, 2)), spaces.adversarial(), rng)
    mean, inv_std = normalization((0.485, 0.456, 0.406)[:c], (0.229, 0.224, 0.225)[:c])
    norm = {} if output == "uint8" else {"mean": mean, "inv_std": inv_std}
    shape = (n, h, w, c) if layout == "nhwc" else (n, c, h, w)
    dtype = np.uint16 if output == "bfloat16" else np.dtype(output)
    expected = _expected(reference.apply_batch(images, params), output, layout, mean, inv_std)
    xp = stage.xp
    module = emulated_module()
    module.word_accesses()  # reset
    for poison in (0, 0xFF):
        out = _buffer(xp, shape, dtype, offset, poison)
        stage.apply(xp.asarray(images), params, out=out, output=output, layout=layout, **norm)
        np.testing.assert_array_equal(_host(out).view(expected.dtype), expected)
    if xp is not np:
        return  # on a device a misaligned vector access faults: the comparison above is the check
    words = module.word_accesses()
    assert words["misaligned"] == 0, words  # a fault on a device
    if case == "full-aligned-runs":
        assert words["loads"] > 0 and words["stores"] > 0, words
    if case == "misaligned-output" and stage.fused:  # no intermediate image: every store is the output's
        assert words["stores"] == 0, words


def test_the_run_length_is_the_kernels():
    match = re.search(r"#define FP_RUN (\d+)", (KERNEL_DIR / "runs.cuh").read_text())
    assert match and int(match.group(1)) == RUN


# -- int32 warps: the guard and the int64 fallback ------------------------------------------


def test_the_guard_admits_exactly_the_warps_whose_sums_fit_int32_at_every_corner():
    width = 1000
    reach = (width - 1) * 65536  # a0 = 1.0: the column sum grows by 65536 per pixel
    for a2, fits in ((2**31 - 1 - reach, True), (2**31 - reach, False), (-(2**31), True), (-(2**31) - 1, False)):
        fixed = np.array([65536, 0, a2, 0, 65536, 0], np.int64)
        assert narrow_warp(fixed, 1, width) == fits, a2
    # the row sum counts too, with its own terms
    assert not narrow_warp(np.array([0, 0, 0, 0, 2**20, 2**31 - 2**20], np.int64), 2, 1)
    assert narrow_warp(np.array([0, 0, 0, 0, 2**20, 2**31 - 2**20 - 1], np.int64), 2, 1)
    # every warp of the registry at every bin and sign fits at ImageNet and odd sizes
    params = complete(
        np.repeat([[OPS[n].id] for n in ("ShearX", "ShearY", "Rotate")], 20, axis=0),
        np.tile(np.arange(10), 6)[:, None],
        spaces.adversarial(),
        np.random.default_rng(0),
    )
    for size in ((224, 224), (29, 41), (600, 2000)):
        table = OpTable(*size)
        assert WIDE_WARP not in _codes(table, table.entries(params)[:, 0]), size


def _codes(table: OpTable, entries: np.ndarray) -> list[str]:
    """The apply functions of ``entries`` in ``table``."""
    offset, _, shape = table.state.layout["e_code"]
    codes = np.frombuffer(table.state.blob[offset:], np.int32, count=shape[0])
    return [APPLY_FUNCTIONS[codes[e]] for e in entries.reshape(-1)]


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_the_int64_warp_equals_the_reference(stage, monkeypatch, grey):
    """Where the guard refuses, warps compute in int64 (``apply_warp_wide``): forced here."""
    monkeypatch.setattr(kernel_pack, "narrow_warp", lambda fixed, height, width: False)
    monkeypatch.setattr(kernel_pack, "_TABLES", {})  # fresh op tables, built with the guard shut
    images = photo_batch(6, 29, 41, grey)
    op = np.array(
        [[OPS[a].id, OPS[b].id] for a, b in [("Rotate", "ShearX"), ("ShearY", "Equalize"), ("Color", "Rotate")] * 2]
    )
    params = complete(
        op, np.random.default_rng(1).integers(1, 10, (6, 2)), spaces.adversarial(), np.random.default_rng(2)
    )
    warps = np.isin(params.op, [OPS[n].id for n in ("Rotate", "ShearX", "ShearY")])
    table = kernel_pack.op_table(29, 41)
    assert set(np.array(_codes(table, table.entries(params)), dtype=object)[warps.reshape(-1)]) == {WIDE_WARP}
    got = _host(stage.apply(stage.xp.asarray(images), params))
    np.testing.assert_array_equal(got, reference.apply_batch(images, params))
