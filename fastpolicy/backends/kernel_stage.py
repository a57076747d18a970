"""The kernel stages' driver: every sample's own op sequence, a few kernel launches per slot.

Per active slot (a slot every sample skips costs nothing):

1. ``fp_histograms`` — 256-bin histograms of the samples whose op needs statistics,
   computed on the slot's input (the intermediate image for a second op);
2. ``fp_build_luts`` — a uint8[C, 256] table per sample of a lut op;
3. ``fp_apply`` — each thread computes runs of pixels of a row with the sample's apply function; the
   last slot may write normalized float32/float16/bfloat16, NCHW or NHWC, directly;
4. ``fp_blur`` — where samples of the slot blur (GaussianBlur: :attr:`~.kernel_ops.KernelOp.passes`),
   after the apply (which copied them), their box passes from the slot's input over their rows
   of its output (uint8 NHWC; a last slot of another output is then copied out by one more
   ``fp_apply``). A batch with such samples runs slot by slot, not fused.

:class:`KernelPolicyStage` drives any build of the kernels: the host builds
(:meth:`~KernelPolicyStage.native`, :meth:`~KernelPolicyStage.emulated`, NumPy arrays;
behind the stage protocol in :mod:`.kernel_host`) and CuPy on a GPU (:mod:`.kernel_cuda`,
which adds the pinned upload and the torch entry point). :func:`kernel_rows` and
:func:`stage_arguments` translate the stage protocol for both.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from ..params import NO_OP, PolicyParams
from ..reference.geometry import FILL, check_fill
from .kernel_ops import BLOCK_THREADS, KERNELS, OUTPUT_TYPES, PLANAR, RUN
from .kernel_pack import HEADER_SIZE, filter_passes, pack_kernels
from .protocol import DTYPES, OutputSpec, copy_rows

_BLOCK = BLOCK_THREADS["fp_apply"]
_MAX_GRID_Y = 65535
_MAX_GRID_X = 2**31 - 1
_APPLY_BLOCKS = 1024
"""Most blocks per sample of an ``fp_apply`` launch (its threads loop over the runs beyond)."""
_BLUR_BLOCKS = 64
"""Most blocks of an ``fp_blur`` launch (each loops over its share of the samples, reusing its two
scratch images: the scratch is at most 64 · 2 images, whatever the batch)."""
_NUMPY_TYPES = {
    name: np.dtype(np.uint16) if dtype is torch.bfloat16 else torch.empty((), dtype=dtype).numpy().dtype
    for name, dtype in DTYPES.items()
}
"""NumPy element types of the outputs of :data:`~.protocol.DTYPES` (bfloat16 as its uint16
bit patterns: NumPy has none)."""


def blur_items(params: PolicyParams, slots, in_rows) -> dict[int, np.ndarray]:
    """Slot → int32 [B, 5] ``fp_blur`` items of its samples whose op has box passes: (row of the
    slot input, row of the output, r, ww, fw); the first of ``slots`` reads ``in_rows``."""
    ops = filter_passes()
    found: dict[int, np.ndarray] = {}
    if not ops:
        return found
    ids = list(ops)
    hits = params.op == ids[0] if len(ids) == 1 else np.isin(params.op, ids)  # one pass over [N, K]
    if not hits.any():
        return found
    for i, k in enumerate(slots):
        column = params.op[:, k]
        samples = np.flatnonzero(hits[:, k])
        if not len(samples):
            continue
        items = np.empty((len(samples), 5), np.int32)
        items[:, 0] = samples if (i > 0 or in_rows is None) else np.asarray(in_rows)[samples]
        items[:, 1] = samples
        for op_id, passes in ops.items():
            rows = np.flatnonzero(column[samples] == op_id)
            if len(rows):
                items[rows, 2:] = passes(params.value[samples[rows], k])
        found[k] = items
    return found


def _header(packed, device_buffer, k: int):
    """int64[16] view of slot ``k``'s header in ``device_buffer`` (the batch where the kernels read it)."""
    offset = packed.layout[k]["header"][0]
    return device_buffer[offset : offset + 8 * HEADER_SIZE].view(np.int64)


class KernelPolicyStage:
    """Applies :class:`PolicyParams` to uint8 NHWC batches with the kernels of ``kernels/``.

    Args:
        module: object with ``get_function(name)`` (``cupy.RawModule``, or a host build:
            :class:`~.kernel_build.NativeModule`, :class:`~.kernel_build.EmulatedModule`).
        xp: the array module of the images (``cupy`` or ``numpy``).
        threads_per_block: launch geometry (at most 256, the kernels' ``__launch_bounds__``):
            256 on a device and in the emulated build; 1 for
            the native build (one thread per block, one block per sample or table).
        fused: apply active slots two at a time with ``fp_policy`` (one launch per pair:
            one block per sample, the second slot composed with the first pixel by pixel,
            statistics and tables inside the block); else three launches per slot
            (``fp_histograms``, ``fp_build_luts``, ``fp_apply``), each slot's output stored.

    Attributes:
        host_seconds: packing and upload calls, summed (the loader's host-time benchmark).
        launches: kernel launches and device allocations (histogram zeroing, intermediate
            images), summed over calls: what ``benchmarks/policy_stage.py`` reports per batch.
    """

    def __init__(self, module, xp, threads_per_block: int = _BLOCK, fused: bool = True):
        if not 1 <= threads_per_block <= _BLOCK:
            raise ValueError(
                f"threads_per_block must be in 1..{_BLOCK} (the kernels' __launch_bounds__), got {threads_per_block!r}"
            )
        self.xp, self.block, self.fused = xp, threads_per_block, fused
        self.launches = 0
        self._kernels = {name: module.get_function(name) for name in KERNELS}
        self._norm: dict = {}
        self.host_seconds = 0.0

    @classmethod
    def emulated(cls, fused: bool = True) -> KernelPolicyStage:
        """The emulated build on NumPy arrays (slow: checks the kernels without a GPU)."""
        from .kernel_build import emulated_module

        return cls(emulated_module(), np, fused=fused)

    @classmethod
    def native(cls, fused: bool = False) -> KernelPolicyStage:
        """The native build on NumPy arrays, the fast CPU stage: compiled with g++ and OpenMP
        at first use (``kernels/host.hpp``), samples in parallel over the cores; per slot by
        default (its row loops are specialised per op), or ``fused``."""
        from .kernel_build import native_module

        module = native_module()
        return cls(module, np, threads_per_block=module.threads_per_block, fused=fused)

    def apply(
        self,
        images,
        params: PolicyParams | None,
        *,
        out=None,
        output: str = "uint8",
        layout: str | None = None,
        mean=None,
        inv_std=None,
        workspace=None,
        fill: int = FILL,
    ):
        """Apply ``params`` to ``images``.

        Args:
            images: uint8 [N, H, W, C] (C = 1 or 3), or the loader's copies [N, M, H, W, C]
                read in place (sample m·N + n is copy m of image n: :func:`~.protocol.copy_rows`,
                whose row table is the only one, handed to the kernels by the packer),
                C-contiguous, on this stage's array module; not modified. SamplePairing
                reads partners from it.
            params: N samples' op slots, or None (no op: copy / normalize only).
            out: where to write, or None to allocate: C-contiguous [N, H, W, C] (layout
                ``"nhwc"``) or [N, C, H, W] (``"nchw"``) of the output type.
            output: ``"uint8"`` (pixels as they are), or ``"float32"``, ``"float16"``,
                ``"bfloat16"``: normalized ``(v - mean) * inv_std`` in float32, rounded to
                nearest even (bfloat16 arrays are uint16 bit patterns: NumPy has no bfloat16).
            layout: ``"nhwc"`` (torch's channels-last memory layout) or ``"nchw"``; None:
                NHWC for uint8, NCHW for the float types.
            mean, inv_std: float32 [C] in pixel units (see :func:`~.protocol.normalization`); float
                outputs only.
            workspace: up to two uint8 [N, H, W, C] buffers for intermediate slots
                (allocated if not given).
            fill: the geometric ops' fill level, 0..255 (AutoAugment's grey 128 by default).

        Returns:
            ``out``.
        """
        xp = self.xp
        images, in_rows = copy_rows(images)
        n, height, width, channels = self._check(images, params, in_rows)
        fill = check_fill(fill)
        if output not in OUTPUT_TYPES:
            raise ValueError(f"output must be one of {tuple(OUTPUT_TYPES)}, got {output!r}")
        layout = layout or ("nhwc" if output == "uint8" else "nchw")
        if layout not in ("nhwc", "nchw"):
            raise ValueError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
        shape = (n, height, width, channels) if layout == "nhwc" else (n, channels, height, width)
        dtype = _NUMPY_TYPES[output]
        if output == "uint8":
            mean = inv_std = None
        else:
            if mean is None or inv_std is None:
                raise ValueError(f"output={output!r} needs mean and inv_std")
            mean, inv_std = self._normalization(mean, inv_std, channels)
        if out is None:
            out = xp.empty(shape, dtype)
        elif tuple(out.shape) != shape or out.dtype.itemsize != np.dtype(dtype).itemsize or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {output} {shape}, got {out.dtype} {tuple(out.shape)}")
        last_mode = OUTPUT_TYPES[output] | (PLANAR if layout == "nchw" else 0)
        if params is None or not any(np.any(params.op[:, k] != NO_OP) for k in range(params.k)):
            params = PolicyParams.skipped(n)
        started = time.perf_counter()
        packed = pack_kernels(params, height, width, allocate=self.allocate, in_rows=in_rows)
        device_buffer = self.upload(packed.buffer)
        self.host_seconds += time.perf_counter() - started
        slots = [k for k in range(packed.k) if packed.active[k]] or [0]
        blurs = blur_items(params, slots, in_rows)
        if self.fused and not blurs:
            self._run_fused(images, packed, device_buffer, slots, out, n, last_mode, mean, inv_std, workspace, fill)
            return out
        finish = slots[-1] in blurs and last_mode != 0  # the blur writes uint8 NHWC: then one more copy
        buffers = self._intermediates(workspace, len(slots) - 1 + finish, (n, height, width, channels))
        current = images
        for i, k in enumerate(slots):
            last = i == len(slots) - 1 and not finish
            target = out if last else buffers[i % 2]
            self._run_slot(
                images,
                current,
                target,
                n,
                last_mode if last else 0,
                mean,
                inv_std,
                device_buffer,
                _header(packed, device_buffer, k),
                packed.sizes[k],
                fill,
            )
            if k in blurs:
                self._run_blur(current, target, blurs[k])
            current = target
        if finish:
            self._copy_out(images, current, out, n, last_mode, mean, inv_std, fill)
        return out

    def _run_blur(self, src, dst, items: np.ndarray) -> None:
        """``fp_blur``: the box passes of the ``items`` (:func:`blur_items`) from ``src`` into ``dst``."""
        _, height, width, channels = src.shape
        i32 = np.int32
        count = len(items)
        # on a device at most _BLUR_BLOCKS blocks; a host build runs its blocks one per core at a
        # time, so no more blocks (and scratch images) than cores
        blocks = min(count, _BLUR_BLOCKS if self.block > 1 else os.cpu_count() or 1)
        scratch = self.xp.empty((blocks, 2, height, width, channels), np.uint8)
        self.launches += 2
        self._kernels["fp_blur"](
            (blocks,),
            (self.block,),
            (src, dst, self.xp.asarray(items), scratch, i32(count), i32(height), i32(width), i32(channels)),
        )

    def _copy_out(self, images, src, out, n: int, out_mode: int, mean, inv_std, fill: int) -> None:
        """One ``fp_apply`` of a skipped slot: ``src`` (uint8 NHWC) into ``out`` in its output mode."""
        started = time.perf_counter()
        packed = pack_kernels(PolicyParams.skipped(n), src.shape[1], src.shape[2], allocate=self.allocate)
        device_buffer = self.upload(packed.buffer)
        self.host_seconds += time.perf_counter() - started
        header = _header(packed, device_buffer, 0)
        self._run_slot(images, src, out, n, out_mode, mean, inv_std, device_buffer, header, packed.sizes[0], fill)

    def _intermediates(self, workspace, count: int, shape) -> list:
        """uint8 [N, H, W, C] buffers between launches: ``workspace``'s, then new ones (each
        counted in :attr:`launches`) up to ``min(count, 2)`` (two alternate)."""
        buffers = list(workspace or [])
        while len(buffers) < min(count, 2):
            buffers.append(self.xp.empty(shape, np.uint8))
            self.launches += 1
        return buffers

    def _normalization(self, mean, inv_std, channels: int):
        """``mean`` and ``inv_std`` as float32 [C] arrays of this stage's module; uploaded once
        per distinct value (a loader normalizes every batch alike)."""
        key = (
            np.asarray(mean, np.float32).reshape(channels).tobytes(),
            np.asarray(inv_std, np.float32).reshape(channels).tobytes(),
        )
        if key not in self._norm:
            self._norm[key] = tuple(self.xp.asarray(np.frombuffer(k, np.float32)) for k in key)
        return self._norm[key]

    def allocate(self, nbytes: int) -> np.ndarray:
        """Host buffer of the packed slot arguments (uint8[nbytes]; a device stage pins it)."""
        return np.empty(nbytes, np.uint8)

    def upload(self, host: np.ndarray):
        """The packed buffer where the kernels read it: the host buffer itself on the CPU (a
        device stage copies it)."""
        return host

    def _check(self, images, params, in_rows):
        """(N, H, W, C): N samples (the images' rows, or ``len(in_rows)``)."""
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[3] not in (1, 3):
            raise ValueError(f"images must be uint8 NHWC with C = 1 or 3, got {images.dtype} {tuple(images.shape)}")
        if not images.flags.c_contiguous:
            raise ValueError("images must be C-contiguous")
        rows, height, width, channels = (int(v) for v in images.shape)
        n = rows
        if in_rows is not None:
            in_rows = np.asarray(in_rows)
            n = len(in_rows)
            if n and (in_rows.min() < 0 or in_rows.max() >= rows):
                raise ValueError(f"in_rows must index the {rows} rows of images")
        if params is not None and params.n != n:
            raise ValueError(f"params describe {params.n} samples but the batch has {n}")
        return n, height, width, channels

    def _run_fused(self, images, packed, device_buffer, slots, out, n, last_mode, mean, inv_std, workspace, fill):
        """``fp_policy`` over the active ``slots`` two at a time (one launch for up to two)."""
        _, height, width, channels = images.shape
        i32 = np.int32
        pairs = [slots[i : i + 2] for i in range(0, len(slots), 2)]
        buffers = self._intermediates(workspace, len(pairs) - 1, (n, height, width, channels))
        current = images
        for i, pair in enumerate(pairs):
            last = i == len(pairs) - 1
            target = out if last else buffers[i % 2]
            self._kernels["fp_policy"](
                (min(n, _MAX_GRID_X),),
                (self.block,),
                (
                    device_buffer,
                    _header(packed, device_buffer, pair[0]),
                    _header(packed, device_buffer, pair[-1]),
                    i32(len(pair)),
                    current,
                    images,
                    target,
                    i32(last_mode if last else 0),
                    device_buffer if mean is None else mean,
                    device_buffer if inv_std is None else inv_std,
                    i32(n),
                    i32(height),
                    i32(width),
                    i32(channels),
                    i32(fill),
                ),
            )
            self.launches += 1
            current = target

    def _run_slot(
        self, images, src, dst, n: int, out_mode: int, mean, inv_std, packed, header, sizes: dict, fill: int
    ) -> None:
        """Slot launches: histograms and tables where samples need them, then the apply.
        ``packed``: the batch buffer where the kernels read it; ``header``: int64 view of the
        slot's header in it; ``sizes``: the slot's ``stats`` and ``luts`` counts."""
        xp = self.xp
        _, height, width, channels = images.shape
        i32 = np.int32
        pixels = height * width
        n_stats, n_luts = sizes["stats"], sizes["luts"]
        hist = None
        if n_stats:
            hist = xp.zeros((n_stats, 1024), np.uint32)
            self.launches += 1 + -(-n_stats // _MAX_GRID_Y)
            blocks = 1 if self.block == 1 else max(1, min(-(-pixels // (self.block * 8)), 64))
            for start in range(0, n_stats, _MAX_GRID_Y):
                chunk = min(n_stats - start, _MAX_GRID_Y)
                self._kernels["fp_histograms"](
                    (blocks, chunk),
                    (self.block,),
                    (packed, header, src, i32(height), i32(width), i32(channels), i32(start), hist[start:]),
                )
        luts = xp.empty((n, channels, 256), np.uint8) if n_luts else packed
        if n_luts:
            self.launches += 1
            threads = n_luts * channels
            per_block = 1 if self.block == 1 else BLOCK_THREADS["fp_build_luts"]
            self._kernels["fp_build_luts"](
                (-(-threads // per_block),),
                (per_block,),
                (packed, header, i32(n_luts), i32(n_stats), i32(channels), hist if hist is not None else packed, luts),
            )
        self.launches += 1
        runs = height * -(-width // RUN)  # a device thread computes runs of RUN pixels of a row
        grid = (1 if self.block == 1 else max(1, min(-(-runs // self.block), _APPLY_BLOCKS)), min(n, _MAX_GRID_Y))
        self._kernels["fp_apply"](
            grid,
            (self.block,),
            (
                packed,
                header,
                src,
                images,
                dst,
                i32(out_mode),
                packed if mean is None else mean,
                packed if inv_std is None else inv_std,
                luts,
                i32(n),
                i32(height),
                i32(width),
                i32(channels),
                i32(fill),
            ),
        )


def stage_arguments(out: OutputSpec, channels: int) -> tuple[str, dict]:
    """:meth:`KernelPolicyStage.apply`'s ``layout`` and normalization keywords for ``out``:
    ``"nhwc"`` (read as [N, C, H, W] channels-last) or ``"nchw"``, and ``mean``/``inv_std``
    for the float types."""
    norm = {}
    if out.normalized:
        norm["mean"], norm["inv_std"] = out.pixel_normalization(channels)
    return ("nhwc" if out.layout == "channels_last" else "nchw"), norm
