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

import threading
import time

import numpy as np

from ..params import NO_OP, PolicyParams
from ..reference.geometry import FILL
from .kernel_ops import KERNELS, OUTPUT_TYPES, PLANAR
from .pack import pack

_BLOCK = 256
_DEVICE_STAGES: dict = {}
_MAX_GRID_Y = 65535


def normalization(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """float32[C] ``mean × 255`` and ``1 / (std × 255)`` (pixel units), rounded as torch does
    for ``torch.tensor(mean) * 255`` and ``1 / (torch.tensor(std) * 255)``."""
    mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(
            f"normalization needs finite means and positive stds, got mean {mean.tolist()}, std {std.tolist()}"
        )
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
        self._norm: dict = {}
        self._pinned: dict = {}  # id of a NumPy view handed to the packer → its pinned tensor
        self._pinned_lock = threading.Lock()
        self.host_seconds = 0.0  # packing and upload calls, summed (the loader's host-time benchmark)

    @classmethod
    def on_device(cls, device_id: int = 0) -> KernelPolicyStage:
        """The CuPy stage for CUDA device ``device_id`` (one per device, kernels compiled once)."""
        if device_id not in _DEVICE_STAGES:
            import cupy

            from .kernel_build import cupy_module

            _DEVICE_STAGES[device_id] = cls(cupy_module(device_id), cupy)
        return _DEVICE_STAGES[device_id]

    @classmethod
    def emulated(cls) -> KernelPolicyStage:
        """The same kernels on the CPU, on NumPy arrays (slow: for tests)."""
        from .kernel_build import emulated_module

        return cls(emulated_module(), np)

    @classmethod
    def native(cls) -> KernelPolicyStage:
        """The same kernels as a fast CPU stage on NumPy arrays: compiled with g++ and
        OpenMP at first use (``kernels/host.hpp``), samples in parallel over the cores."""
        from .kernel_build import host_module

        return cls(host_module(), np, threads_per_block=1)

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
        in_rows=None,
    ):
        """Apply ``params`` to ``images``.

        Args:
            images: uint8 [N, H, W, C] (C = 1 or 3), C-contiguous, on this stage's array
                module; not modified. SamplePairing reads partners from it.
            params: N samples' op slots, or None (no op: copy / normalize only).
            out: where to write, or None to allocate: C-contiguous [N, H, W, C] (layout
                ``"nhwc"``) or [N, C, H, W] (``"nchw"``) of the output type.
            output: ``"uint8"`` (pixels as they are), or ``"float32"``, ``"float16"``,
                ``"bfloat16"``: normalized ``(v - mean) * inv_std`` in float32, rounded to
                nearest even (bfloat16 arrays are uint16 bit patterns: NumPy has no bfloat16).
            layout: ``"nhwc"`` (torch's channels-last memory layout) or ``"nchw"``; None:
                NHWC for uint8, NCHW for the float types.
            mean, inv_std: float32 [C] in pixel units (see :func:`normalization`); float
                outputs only.
            workspace: up to two uint8 [N, H, W, C] buffers for intermediate slots
                (allocated if not given).
            fill: the geometric ops' fill level, 0..255 (AutoAugment's grey 128 by default).
            in_rows: int[N], the row of ``images`` holding sample n (a permutation of
                0 … N−1; default the identity): the output is in sample order whatever the
                input's (the loader's source yields image-major copies).

        Returns:
            ``out``.
        """
        xp = self.xp
        n, height, width, channels = self._check(images, params, in_rows)
        if not 0 <= int(fill) <= 255:
            raise ValueError(f"fill must be a level in 0..255, got {fill!r}")
        if output not in OUTPUT_TYPES:
            raise ValueError(f"output must be one of {tuple(OUTPUT_TYPES)}, got {output!r}")
        layout = layout or ("nhwc" if output == "uint8" else "nchw")
        if layout not in ("nhwc", "nchw"):
            raise ValueError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
        shape = (n, height, width, channels) if layout == "nhwc" else (n, channels, height, width)
        dtype = {"uint8": np.uint8, "float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}[output]
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
            params = _copy_params(n)
        started = time.perf_counter()
        packed = pack(params, height, width, "kernels", allocate=self.allocate, in_rows=in_rows)
        device_buffer = self.upload(packed.buffer)
        rows = packed.batch_views(device_buffer)
        self.host_seconds += time.perf_counter() - started
        slots = [slot for slot, active in zip(packed.views(device_buffer), packed.active) if active] or packed.views(
            device_buffer
        )[:1]
        buffers = list(workspace or [])
        while len(buffers) < min(len(slots) - 1, 2):
            buffers.append(xp.empty((n, height, width, channels), np.uint8))
        current = images
        for i, slot in enumerate(slots):
            last = i == len(slots) - 1
            target = out if last else buffers[i % 2]
            self._run_slot(
                images,
                current,
                target,
                n,
                last_mode if last else 0,
                mean,
                inv_std,
                slot,
                int(fill),
                rows["in_rows"] if i == 0 else rows["identity"],
                rows["in_rows"],
            )
            current = target
        return out

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
        """Host buffer of the packed slot arguments: pinned memory on a device (one
        asynchronous upload per batch), plain NumPy on the CPU."""
        if self.xp is np:
            return np.empty(nbytes, np.uint8)
        import torch

        pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        view = pinned.numpy()
        with self._pinned_lock:
            self._pinned[id(view)] = pinned  # upload() copies from the torch tensor itself
        return view

    def upload(self, host: np.ndarray):
        """The packed buffer where the kernels read it: one asynchronous copy on the current
        stream from the pinned torch tensor :meth:`allocate` made (so torch's caching host
        allocator records the copy and keeps the block until it is done), the host buffer
        itself on the CPU."""
        if self.xp is np:
            return host
        import torch

        with self._pinned_lock:
            pinned = self._pinned.pop(id(host))
        device = torch.device("cuda", self.xp.cuda.Device().id)
        return self.xp.from_dlpack(pinned.to(device, non_blocking=True))

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

    def _run_slot(
        self, images, src, dst, n: int, out_mode: int, mean, inv_std, dev: dict, fill: int, src_row, orig_row
    ) -> None:
        xp = self.xp
        _, height, width, channels = images.shape
        i32 = np.int32
        pixels = height * width
        n_stats, n_luts = len(dev["stat_samples"]), len(dev["lut_samples"])
        hist = None
        if n_stats:
            hist = xp.zeros((n_stats, 1024), np.uint32)
            blocks = 1 if self.block == 1 else max(1, min(-(-pixels // (self.block * 8)), 64))
            for start in range(0, n_stats, _MAX_GRID_Y):
                chunk = dev["stat_samples"][start : start + _MAX_GRID_Y]
                self._kernels["fp_histograms"](
                    (blocks, len(chunk)),
                    (self.block,),
                    (src, i32(height), i32(width), i32(channels), chunk, src_row, hist[start : start + _MAX_GRID_Y]),
                )
        luts = xp.empty((n, channels, 256), np.uint8) if n_luts else dev["code"]
        if n_luts:
            threads = n_luts * channels
            per_block = 1 if self.block == 1 else 128
            self._kernels["fp_build_luts"](
                (-(-threads // per_block),),
                (per_block,),
                (
                    dev["lut_samples"],
                    i32(n_luts),
                    i32(channels),
                    dev["lut_kind"],
                    dev["value"],
                    dev["ivalue"],
                    dev["stat_row"],
                    hist if hist is not None else dev["code"],
                    luts,
                ),
            )
        grid = (1 if self.block == 1 else max(1, min(-(-pixels // self.block), 1024)), min(n, _MAX_GRID_Y))
        self._kernels["fp_apply"](
            grid,
            (self.block,),
            (
                src,
                images,
                dst,
                i32(out_mode),
                dev["value"] if mean is None else mean,
                dev["value"] if inv_std is None else inv_std,
                i32(n),
                i32(height),
                i32(width),
                i32(channels),
                i32(fill),
                dev["code"],
                dev["value"],
                luts,
                dev["fixed"],
                dev["shift"],
                dev["rows"],
                dev["cols"],
                dev["box"],
                dev["partner"],
                src_row,
                orig_row,
            ),
        )


def _copy_params(n: int) -> PolicyParams:
    """One slot every sample skips: the stage then only copies (and normalizes)."""
    return PolicyParams(
        op=np.full((n, 1), NO_OP),
        bin=np.full((n, 1), -1),
        sign=np.ones((n, 1)),
        value=np.zeros((n, 1)),
        center=np.zeros((n, 1, 2)),
        partner=np.zeros((n, 1)),
        policy=np.zeros(n),
    )


def _cupy_stream(stream):
    """A CuPy view of torch CUDA ``stream`` (the stream protocol where torch has it)."""
    import cupy

    if hasattr(stream, "__cuda_stream__") and hasattr(cupy.cuda.Stream, "from_external"):
        return cupy.cuda.Stream.from_external(stream)
    return cupy.cuda.ExternalStream(stream.cuda_stream)


def apply_torch(
    images,
    params: PolicyParams | None,
    *,
    output: str = "uint8",
    layout: str | None = None,
    mean=None,
    inv_std=None,
    fill: int = FILL,
    in_rows=None,
):
    """Apply ``params`` to a CUDA torch batch with the CuPy stage, zero-copy.

    Args:
        images: torch uint8 [N, H, W, C] on a CUDA device (not modified).
        params, output, layout, mean, inv_std, fill, in_rows: as :meth:`KernelPolicyStage.apply`.

    Returns:
        A new torch tensor on the same device, [N, H, W, C] (layout ``"nhwc"``) or
        [N, C, H, W] (``"nchw"``) of the output type (bfloat16 as torch.bfloat16). The
        kernels run on torch's current stream, so the result is ready in stream order like
        any torch op.
    """
    import cupy
    import torch

    if not images.is_cuda:
        raise ValueError("apply_torch needs a CUDA tensor; use KernelPolicyStage.emulated() on the CPU")
    if output not in OUTPUT_TYPES:
        raise ValueError(f"output must be one of {tuple(OUTPUT_TYPES)}, got {output!r}")
    rows, height, width, channels = images.shape
    n = rows if in_rows is None else len(in_rows)
    layout = layout or ("nhwc" if output == "uint8" else "nchw")
    shape = (n, height, width, channels) if layout == "nhwc" else (n, channels, height, width)
    dtype = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        output
    ]
    out = torch.empty(shape, dtype=dtype, device=images.device)
    target = out.view(torch.int16) if output == "bfloat16" else out  # DLPack-friendly 2-byte view
    stage = KernelPolicyStage.on_device(images.device.index or 0)
    with cupy.cuda.Device(images.device.index or 0), _cupy_stream(torch.cuda.current_stream(images.device)):
        stage.apply(
            cupy.from_dlpack(images.contiguous()),
            params,
            out=cupy.from_dlpack(target),
            output=output,
            layout=layout,
            mean=mean,
            inv_std=inv_std,
            fill=fill,
            in_rows=in_rows,
        )
    return out
