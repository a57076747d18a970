"""The fused policy kernels (``kernels/``) against the NumPy reference, through their driver.

Every kernel source must compile with NVRTC for sm_80 and sm_90 (no GPU needed). The
kernels then run twice over the same checks: on the CPU through the emulated build
(``kernels/emulate.hpp``, always) and through CuPy on a GPU (``gpu``-marked). Outputs and
intermediate buffers are poisoned with 0 and with 255 before two runs, so a pixel no
thread writes fails whatever its reference value. (Every op at every bin on every backend:
``tests/test_stage.py``.)
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import photo_batch

from fastpolicy import OP_NAMES, OPS, reference, spaces
from fastpolicy.backends.kernel_build import KernelCompileError, nvrtc_compile
from fastpolicy.backends.kernel_ops import APPLY_FUNCTIONS, KERNEL_DIR, KERNELS, LUT_BUILDERS
from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.backends.protocol import normalization
from fastpolicy.params import PolicyParams
from fastpolicy.sampling import complete

HEIGHT, WIDTH, BATCH = 37, 53, 20


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvrtc(arch):
    ptx, log = nvrtc_compile(arch)
    for name in KERNELS:
        assert f".entry {name}(".encode() in ptx, name
    assert "warning" not in log.lower(), log
    # CI's compile time follows the PTX's size: 235 KB compile in about 4 s per architecture;
    # the first op inlined at each of its uses in fp_policy made 698 KB that took minutes
    assert len(ptx) < 400_000, f"{len(ptx)} bytes of PTX: is a large device function inlined at many uses?"


def test_compile_error_names_the_problem(monkeypatch):
    from fastpolicy.backends import kernel_build

    monkeypatch.setattr(kernel_build, "kernel_source", lambda: '#include "policy.cu"\n')  # no dispatch tables
    with pytest.raises(KernelCompileError, match="FP_LUTS|FP_APPLIES"):
        kernel_build.nvrtc_compile("sm_80")


def test_every_op_has_dali_and_kernel_implementations():
    pytest.importorskip("nvidia.dali")
    import fastpolicy.backends.dali_ops  # noqa: F401  (attaches the DALI implementations)

    sources = "".join(p.read_text() for p in KERNEL_DIR.glob("*.cu"))
    defined = set(re.findall(r"__device__ void (\w+)\(", sources))
    defined |= set(re.findall(r"^FP_LUT_ENTRY\((\w+)\)", sources, re.MULTILINE))  # the table builders
    for spec in OPS.values():
        assert {"dali", "kernels"} <= set(spec.backends), spec.name
        kernel = spec.backends["kernels"]
        assert kernel.apply in defined and (kernel.lut is None or kernel.lut in defined), spec.name
        assert (kernel.lut is not None) == (spec.kind == "lut"), spec.name
    assert set(APPLY_FUNCTIONS) | set(LUT_BUILDERS) <= defined


# -- the same checks on the emulator and on a GPU ------------------------------------------


class Runner:
    """Runs a stage on host arrays: uploads, applies with poisoned buffers, downloads."""

    def __init__(self, stage: KernelPolicyStage):
        self.stage, self.xp = stage, stage.xp

    def _host(self, array) -> np.ndarray:
        return array.get() if hasattr(array, "get") else np.asarray(array)

    def run(self, images: np.ndarray, params, output: str = "uint8", mean=None, inv_std=None) -> np.ndarray:
        """Apply twice, buffers poisoned with 0 then 255; both runs must agree."""
        xp = self.xp
        device_images = xp.asarray(images)
        n, h, w, c = images.shape
        shape = (n, h, w, c) if output == "uint8" else (n, c, h, w)
        results = []
        for poison in (0, 255):
            out = xp.full(shape, poison if output == "uint8" else np.nan, dtype=np.dtype(output))
            workspace = [xp.full(images.shape, poison, np.uint8) for _ in range(2)]
            self.stage.apply(
                device_images, params, out=out, output=output, mean=mean, inv_std=inv_std, workspace=workspace
            )
            results.append(self._host(out))
        np.testing.assert_array_equal(results[0], results[1], err_msg="an output pixel was not written")
        np.testing.assert_array_equal(self._host(device_images), images, err_msg="the input was modified")
        return results[0]


@pytest.fixture(scope="module", params=["emulated", pytest.param("cupy", marks=pytest.mark.gpu)])
def runner(request):
    if request.param == "emulated":
        return Runner(KernelPolicyStage.emulated())
    from fastpolicy.backends.kernel_cuda import device_stage

    return Runner(device_stage(0))


def _params(op: np.ndarray, bins: np.ndarray, space, seed: int) -> PolicyParams:
    return complete(op, bins, space, np.random.default_rng(seed))


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
@pytest.mark.parametrize("space", ["adversarial", "aws"])
def test_mixed_two_slot_batches(runner, space, grey):
    """Random op pairs of every op (skips included) in one batch, several batches."""
    search_space = spaces.get_space(space)
    ids = np.array([OPS[name].id for name in search_space.ops] + [-1])
    images = photo_batch(BATCH, HEIGHT, WIDTH, grey)
    rng = np.random.default_rng(11)
    for seed in range(3):
        params = _params(
            rng.choice(ids, (BATCH, 2)), rng.integers(0, search_space.n_bins, (BATCH, 2)), search_space, seed
        )
        np.testing.assert_array_equal(runner.run(images, params), reference.apply_batch(images, params))


@pytest.mark.parametrize("second", ["AutoContrast", "Equalize", "Contrast"])
@pytest.mark.parametrize("first", ["Posterize", "Solarize", "Rotate", "Cutout"])
def test_statistics_are_taken_on_the_intermediate_image(runner, first, second):
    images = photo_batch(6, HEIGHT, WIDTH)
    op = np.tile([OPS[first].id, OPS[second].id], (6, 1))
    params = _params(op, np.tile([9, 5], (6, 1)), spaces.adversarial(), 3)
    np.testing.assert_array_equal(runner.run(images, params), reference.apply_batch(images, params))


def test_three_slots_and_large_images(runner):
    """Three slots (both intermediate buffers) on 224² images: histograms span many blocks."""
    images = photo_batch(3, 224, 224)
    ops = np.array(
        [
            [OPS["Equalize"].id, OPS["Rotate"].id, OPS["AutoContrast"].id],
            [OPS["Sharpness"].id, OPS["Contrast"].id, OPS["SamplePairing"].id],
            [OPS["TranslateY"].id, -1, OPS["Equalize"].id],
        ]
    )
    params = _params(ops, np.full((3, 3), 7), spaces.adversarial(), 5)
    np.testing.assert_array_equal(runner.run(images, params), reference.apply_batch(images, params))


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 5), (3, 3), (5, 2)])
def test_tiny_images(runner, height, width):
    images = photo_batch(len(OP_NAMES), height, width)
    op = np.stack([np.arange(len(OP_NAMES)), np.roll(np.arange(len(OP_NAMES)), 5)], axis=1)
    params = _params(op, np.full(op.shape, 8), spaces.adversarial(), 9)
    np.testing.assert_array_equal(runner.run(images, params), reference.apply_batch(images, params))


def _normalized(images: np.ndarray, mean: np.ndarray, inv_std: np.ndarray) -> np.ndarray:
    """What the loader's torch path computes: (v - mean) * inv_std in float32, NCHW."""
    return ((images.astype(np.float32) - mean) * inv_std).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("output", ["float32", "float16"])
def test_fused_normalized_output(runner, output):
    images = photo_batch(BATCH, HEIGHT, WIDTH)
    mean, inv_std = normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    rng = np.random.default_rng(2)
    params = _params(
        rng.integers(-1, len(OP_NAMES), (BATCH, 2)), rng.integers(0, 10, (BATCH, 2)), spaces.adversarial(), 2
    )
    out = runner.run(images, params, output=output, mean=mean, inv_std=inv_std)
    expected = _normalized(reference.apply_batch(images, params), mean, inv_std).astype(output)
    np.testing.assert_array_equal(out, expected)


def test_float16_rounding_overflow_and_subnormals(runner):
    """Scales that send values to float16 infinity, subnormals and exact ties."""
    images = photo_batch(4, HEIGHT, WIDTH)
    mean = np.array([0.0, 128.0, 3.0], np.float32)
    inv_std = np.array([300.0, 2.0**-20, 1.0 / 3.0], np.float32)
    out = runner.run(images, None, output="float16", mean=mean, inv_std=inv_std)
    with np.errstate(over="ignore"):
        expected = _normalized(images, mean, inv_std).astype(np.float16)
    assert np.isinf(expected).any() and (np.abs(expected[np.isfinite(expected)]) < 2.0**-14).any()
    np.testing.assert_array_equal(out.view(np.uint16), expected.view(np.uint16))


def test_no_params_copies(runner):
    images = photo_batch(3, HEIGHT, WIDTH)
    np.testing.assert_array_equal(runner.run(images, None), images)


def test_rejects_bad_arguments():
    stage = KernelPolicyStage.emulated()
    images = photo_batch(4, HEIGHT, WIDTH)
    params = _params(np.zeros((3, 1), int), np.zeros((3, 1), int), spaces.adversarial(), 0)
    with pytest.raises(ValueError, match="3 samples but the batch has 4"):
        stage.apply(images, params)
    with pytest.raises(ValueError, match="uint8 NHWC"):
        stage.apply(images.astype(np.float32), None)
    with pytest.raises(ValueError, match="output must be one of"):
        stage.apply(images, None, output="int8")
    with pytest.raises(ValueError, match="needs mean and inv_std"):
        stage.apply(images, None, output="float32")
    with pytest.raises(ValueError, match="out must be C-contiguous uint8"):
        stage.apply(images, None, out=np.empty((4, 3, HEIGHT, WIDTH), np.uint8))
    with pytest.raises(ValueError, match="fill must be an integer level in 0..255, got 256"):
        stage.apply(images, None, fill=256)


def test_the_kernels_write_every_output_dtype_of_the_protocol():
    from fastpolicy.backends.kernel_ops import OUTPUT_TYPES
    from fastpolicy.backends.protocol import DTYPES

    assert set(OUTPUT_TYPES) == set(DTYPES)


@pytest.mark.gpu
@pytest.mark.parametrize("output", ["uint8", "float16"])
def test_apply_torch_on_a_side_stream_equals_emulator(output):
    import torch

    from fastpolicy.backends.kernel_cuda import apply_torch

    images = photo_batch(BATCH, HEIGHT, WIDTH)
    rng = np.random.default_rng(4)
    params = _params(
        rng.integers(-1, len(OP_NAMES), (BATCH, 2)), rng.integers(0, 10, (BATCH, 2)), spaces.adversarial(), 4
    )
    mean, inv_std = normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    norm = {} if output == "uint8" else {"mean": mean, "inv_std": inv_std}
    expected = KernelPolicyStage.emulated().apply(images, params, output=output, **norm)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        tensor = torch.from_numpy(images).cuda()
        out = apply_torch(tensor, params, output=output, **norm)
    stream.synchronize()
    assert out.device == tensor.device and out.is_contiguous()
    np.testing.assert_array_equal(out.cpu().numpy(), expected)
    assert torch.equal(tensor.cpu(), torch.from_numpy(images))


def test_ptxas_table_names_every_kernel_with_its_figures():
    from fastpolicy.backends.kernel_ops import KERNELS
    from fastpolicy.backends.kernel_ptxas import markdown, ptxas_table, resident_warps

    rows = ptxas_table("sm_90")
    assert [r.kernel for r in rows] == list(KERNELS)
    for r in rows:
        assert 0 < r.registers <= 255 and 0 < r.resident_warps <= 64, r
        assert r.spill_stores == r.spill_loads == 0, f"{r.kernel} spills registers: {r}"
    apply = next(r for r in rows if r.kernel == "fp_apply")
    assert apply.resident_warps >= 48, f"fp_apply must keep at least 48 warps per SM (issue 29): {apply}"
    assert apply.vector_stores > 0, f"fp_apply's runs store vectors: {apply}"
    assert all(f"`{name}`" in markdown(rows) for name in KERNELS)
    # 56 registers: 1792 per warp, 65536 // 1792 = 36 warps of registers → 4 blocks of 8 warps = 32
    assert resident_warps("sm_90", 56, 0, 256) == 32 and resident_warps("sm_90", 32, 0, 256) == 64
    with pytest.raises(ValueError, match="sm_70"):
        ptxas_table("sm_70")


def test_ptxas_counts_follow_calls_into_device_functions():
    """A kernel's PTX counts cover the ``.func`` bodies it reaches through calls, once each."""
    from fastpolicy.backends.kernel_ptxas import _entries

    ptx = """
.func  (.param .b32 func_retval0) leaf(
)
;
.func other(
)
{ ld.global.u8 %r9, [%rd9]; }
.func  (.param .b32 func_retval0) leaf(
)
{ ld.global.nc.u8 %r1, [%rd1]; }
.func middle(
)
{ ld.local.u8 %r5, [%rd5];
 call.uni (retval0),
\tleaf,
\t(param0); }
.visible .entry k(
)
{ call.uni
\tmiddle,
\t(param0);
 call.uni (retval0), leaf, (param0); }
.visible .entry lone(
)
{ ret; }
"""
    bodies = _entries(ptx)
    assert set(bodies) == {"k", "lone"}
    assert bodies["k"].count("ld.global.nc.u8") == 1 and "%rd5" in bodies["k"] and "%rd9" not in bodies["k"]
    assert "call" not in bodies["lone"]


def test_blocks_larger_than_the_launch_bounds_are_refused():
    with pytest.raises(ValueError, match="threads_per_block must be in 1..256.*512"):
        KernelPolicyStage(None, np, threads_per_block=512)
    with pytest.raises(ValueError, match="got 0"):
        KernelPolicyStage(None, np, threads_per_block=0)
