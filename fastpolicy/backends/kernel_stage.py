"""The fused policy stage: every sample's own op sequence, a few kernel launches per slot.

Per active slot (a slot every sample skips costs nothing):

1. ``fp_histograms`` — 256-bin histograms of the samples whose op needs statistics,
   computed on the slot's input (the intermediate image for a second op);
2. ``fp_build_luts`` — a uint8[C, 256] table per sample of a lut op;
3. ``fp_apply`` — one thread per output pixel runs the sample's apply function; the
   last slot may write normalized float32/float16 NCHW directly.

The same code drives CuPy on a GPU (:meth:`KernelPolicyStage.on_device`) and the host
emulator (:meth:`KernelPolicyStage.emulated`, NumPy arrays). :func:`apply_torch` is
the zero-copy torch entry point (DLPack, on torch's current stream).
"""

from __future__ import annotations

import numpy as np

from ..params import PolicyParams
from ..reference.geometry import FILL
from .kernel_ops import KERNELS, OUTPUT_MODES
from .kernel_slots import KernelSlot, copy_slot, kernel_slot

_BLOCK = 256
_MAX_GRID_Y = 65535


def normalization(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """float32[C] ``mean × 255`` and ``1 / (std × 255)`` (pixel units), rounded as torch does
    for ``torch.tensor(mean) * 255`` and ``1 / (torch.tensor(std) * 255)``."""
    mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(f"normalization needs finite means and positive stds, got mean {mean.tolist()}, "
                         f"std {std.tolist()}")
    return mean * np.float32(255), np.float32(1) / (std * np.float32(255))


class KernelPolicyStage:
    """Applies :class:`PolicyParams` to uint8 NHWC batches with the kernels of ``kernels/``.

    Args:
        module: object with ``get_function(name)`` (``cupy.RawModule`` or
            :class:`~.kernel_build.EmulatedModule`).
        xp: the array module of the images (``cupy`` or ``numpy``).
        threads_per_block: launch geometry: 256 on a device and in the emulator; 1 for the
            fast host build (one thread per block, one block per sample or table).
    """

    def __init__(self, module, xp, threads_per_block: int = _BLOCK):
        self.xp, self.block = xp, threads_per_block
        self._kernels = {name: module.get_function(name) for name in KERNELS}

    @classmethod
    def on_device(cls, device_id: int = 0) -> "KernelPolicyStage":
        """The CuPy stage for CUDA device ``device_id`` (kernels compiled once, memoized)."""
        import cupy

        from .kernel_build import cupy_module

        return cls(cupy_module(device_id), cupy)

    @classmethod
    def emulated(cls) -> "KernelPolicyStage":
        """The same kernels on the CPU, on NumPy arrays (slow: for tests)."""
        from .kernel_build import emulated_module

        return cls(emulated_module(), np)

    @classmethod
    def native(cls) -> "KernelPolicyStage":
        """The same kernels as a fast CPU stage on NumPy arrays: compiled with g++ and
        OpenMP at first use (``kernels/host.hpp``), samples in parallel over the cores."""
        from .kernel_build import host_module

        return cls(host_module(), np, threads_per_block=1)

    def apply(self, images, params: PolicyParams | None, *, out=None, output: str = "uint8",
              mean=None, inv_std=None, workspace=None, fill: int = FILL):
        """Apply ``params`` to ``images``.

        Args:
            images: uint8 [N, H, W, C] (C = 1 or 3), C-contiguous, on this stage's array
                module; not modified. SamplePairing reads partners from it.
            params: N samples' op slots, or None (no op: copy / normalize only).
            out: where to write, or None to allocate: uint8 [N, H, W, C] for
                ``output="uint8"``, float32/float16 [N, C, H, W] otherwise.
            output: ``"uint8"``, ``"float32"`` or ``"float16"`` (normalized
                ``(v - mean) * inv_std`` in float32, then rounded to the output type).
            mean, inv_std: float32 [C] in pixel units (see :func:`normalization`); float
                outputs only.
            workspace: up to two uint8 [N, H, W, C] buffers for intermediate slots
                (allocated if not given).
            fill: the geometric ops' fill level, 0..255 (AutoAugment's grey 128 by default).

        Returns:
            ``out``.
        """
        xp = self.xp
        n, height, width, channels = self._check(images, params)
        if not 0 <= int(fill) <= 255:
            raise ValueError(f"fill must be a level in 0..255, got {fill!r}")
        if output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {tuple(OUTPUT_MODES)}, got {output!r}")
        if output == "uint8":
            shape, dtype, mean, inv_std = (n, height, width, channels), np.uint8, None, None
        else:
            shape, dtype = (n, channels, height, width), np.dtype(output)
            if mean is None or inv_std is None:
                raise ValueError(f"output={output!r} needs mean and inv_std")
            mean = xp.asarray(np.asarray(mean, np.float32).reshape(channels))
            inv_std = xp.asarray(np.asarray(inv_std, np.float32).reshape(channels))
        if out is None:
            out = xp.empty(shape, dtype)
        elif tuple(out.shape) != shape or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {np.dtype(dtype).name} {shape}, "
                             f"got {out.dtype} {tuple(out.shape)}")
        slots = [] if params is None else [kernel_slot(params, k, height, width) for k in range(params.k)]
        slots = [s for s in slots if s.active] or [copy_slot(n, height, width)]
        buffers = list(workspace or [])
        while len(buffers) < min(len(slots) - 1, 2):
            buffers.append(xp.empty((n, height, width, channels), np.uint8))
        current = images
        for i, slot in enumerate(slots):
            last = i == len(slots) - 1
            target = out if last else buffers[i % 2]
            self._run_slot(images, current, target, OUTPUT_MODES[output] if last else 0, mean, inv_std, slot,
                           int(fill))
            current = target
        return out

    def _check(self, images, params):
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[3] not in (1, 3):
            raise ValueError(f"images must be uint8 NHWC with C = 1 or 3, got {images.dtype} {tuple(images.shape)}")
        if not images.flags.c_contiguous:
            raise ValueError("images must be C-contiguous")
        if params is not None and params.n != images.shape[0]:
            raise ValueError(f"params describe {params.n} samples but the batch has {images.shape[0]}")
        return tuple(int(v) for v in images.shape)

    def _run_slot(self, images, src, dst, out_mode: int, mean, inv_std, slot: KernelSlot, fill: int) -> None:
        xp = self.xp
        n, height, width, channels = images.shape
        dev = {name: xp.asarray(array) for name, array in slot.arrays().items()}
        i32 = np.int32
        pixels = height * width
        hist = None
        if len(slot.stat_samples):
            hist = xp.zeros((len(slot.stat_samples), 1024), np.uint32)
            blocks = 1 if self.block == 1 else max(1, min(-(-pixels // (self.block * 8)), 64))
            for start in range(0, len(slot.stat_samples), _MAX_GRID_Y):
                chunk = dev["stat_samples"][start:start + _MAX_GRID_Y]
                self._kernels["fp_histograms"](
                    (blocks, len(chunk)), (self.block,),
                    (src, i32(height), i32(width), i32(channels), chunk, hist[start:start + _MAX_GRID_Y]))
        luts = xp.empty((n, channels, 256), np.uint8) if len(slot.lut_samples) else dev["code"]
        if len(slot.lut_samples):
            threads = len(slot.lut_samples) * channels
            per_block = 1 if self.block == 1 else 128
            self._kernels["fp_build_luts"](
                (-(-threads // per_block),), (per_block,),
                (dev["lut_samples"], i32(len(slot.lut_samples)), i32(channels), dev["lut_kind"], dev["value"],
                 dev["ivalue"], dev["stat_row"], hist if hist is not None else dev["code"], luts))
        grid = (1 if self.block == 1 else max(1, min(-(-pixels // self.block), 1024)), min(n, _MAX_GRID_Y))
        self._kernels["fp_apply"](
            grid, (self.block,),
            (src, images, dst, i32(out_mode), dev["value"] if mean is None else mean,
             dev["value"] if inv_std is None else inv_std, i32(n), i32(height), i32(width), i32(channels), i32(fill),
             dev["code"], dev["value"], luts, dev["fixed"], dev["shift"], dev["rows"], dev["cols"], dev["box"],
             dev["partner"]))


def _cupy_stream(stream):
    """A CuPy view of torch CUDA ``stream`` (the stream protocol where torch has it)."""
    import cupy

    if hasattr(stream, "__cuda_stream__") and hasattr(cupy.cuda.Stream, "from_external"):
        return cupy.cuda.Stream.from_external(stream)
    return cupy.cuda.ExternalStream(stream.cuda_stream)


def apply_torch(images, params: PolicyParams | None, *, output: str = "uint8", mean=None, inv_std=None,
                fill: int = FILL):
    """Apply ``params`` to a CUDA torch batch with the CuPy stage, zero-copy.

    Args:
        images: torch uint8 [N, H, W, C] on a CUDA device (not modified).
        params, output, mean, inv_std, fill: as :meth:`KernelPolicyStage.apply`.

    Returns:
        A new torch tensor on the same device: uint8 [N, H, W, C], or float32/float16
        [N, C, H, W]. The kernels run on torch's current stream, so the result is ready in
        stream order like any torch op.
    """
    import cupy
    import torch

    if not images.is_cuda:
        raise ValueError("apply_torch needs a CUDA tensor; use KernelPolicyStage.emulated() on the CPU")
    n, height, width, channels = images.shape
    shape = (n, height, width, channels) if output == "uint8" else (n, channels, height, width)
    dtype = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16}.get(output)
    if dtype is None:
        raise ValueError(f"output must be one of {tuple(OUTPUT_MODES)}, got {output!r}")
    out = torch.empty(shape, dtype=dtype, device=images.device)
    stage = KernelPolicyStage.on_device(images.device.index or 0)
    with cupy.cuda.Device(images.device.index or 0), _cupy_stream(torch.cuda.current_stream(images.device)):
        stage.apply(cupy.from_dlpack(images.contiguous()), params, out=cupy.from_dlpack(out), output=output,
                    mean=mean, inv_std=inv_std, fill=fill)
    return out
