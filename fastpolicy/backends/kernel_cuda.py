"""The ``"cupy"`` backend: the kernels on a CUDA GPU through CuPy, driven by :mod:`.kernel_stage`.

What is CUDA-specific lives here: the CuPy module per device (:func:`device_stage`,
compiled once), the packed arguments in pinned memory with one asynchronous upload per
batch (:class:`CudaKernelStage`), torch's current stream as a CuPy stream, and the
zero-copy torch entry point :func:`apply_torch` (DLPack). CuPy is imported only when a
stage is built, so this module (and its registration) loads without CuPy.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ..params import PolicyParams
from ..reference.geometry import FILL, check_fill
from .kernel_ops import OUTPUT_TYPES
from .kernel_stage import KernelPolicyStage, stage_arguments
from .protocol import DTYPES, PolicyStage, checked_samples
from .registration import importable, register_stage

_DEVICE_STAGES: dict[int, CudaKernelStage] = {}
_DEVICE_LOCK = threading.Lock()


class CudaKernelStage(KernelPolicyStage):
    """:class:`~.kernel_stage.KernelPolicyStage` on CuPy arrays of one CUDA device: the packed
    slot arguments go to pinned memory and up in one asynchronous copy per batch."""

    def __init__(self, module, xp) -> None:
        super().__init__(module, xp)
        self._pinned: dict = {}  # id of a NumPy view handed to the packer → its pinned tensor
        self._pinned_lock = threading.Lock()

    def allocate(self, nbytes: int) -> np.ndarray:
        """uint8[nbytes] viewing a pinned torch tensor (kept until :meth:`upload`)."""
        pinned = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        view = pinned.numpy()
        with self._pinned_lock:
            self._pinned[id(view)] = pinned  # upload() copies from the torch tensor itself
        return view

    def upload(self, host: np.ndarray):
        """One asynchronous copy on the current stream from the pinned torch tensor
        :meth:`allocate` made (so torch's caching host allocator records the copy and keeps
        the block until it is done); a CuPy array on the current device."""
        with self._pinned_lock:
            pinned = self._pinned.pop(id(host))
        device = torch.device("cuda", self.xp.cuda.Device().id)
        return self.xp.from_dlpack(pinned.to(device, non_blocking=True))


def device_stage(device_id: int = 0) -> CudaKernelStage:
    """The CuPy stage of CUDA device ``device_id`` (one per device, kernels compiled once)."""
    with _DEVICE_LOCK:
        if device_id not in _DEVICE_STAGES:
            import cupy

            from .kernel_build import cupy_module

            _DEVICE_STAGES[device_id] = CudaKernelStage(cupy_module(device_id), cupy)
        return _DEVICE_STAGES[device_id]


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
):
    """Apply ``params`` to a CUDA torch batch with the CuPy stage, zero-copy.

    Args:
        images: torch uint8 [N, H, W, C], or the loader's copies [N, M, H, W, C] (read in
            place), on a CUDA device (not modified).
        params, output, layout, mean, inv_std, fill: as
            :meth:`~.kernel_stage.KernelPolicyStage.apply`.

    Returns:
        A new torch tensor on the same device, [N, H, W, C] (layout ``"nhwc"``) or
        [N, C, H, W] (``"nchw"``) of the output type (bfloat16 as torch.bfloat16). The
        kernels run on torch's current stream, so the result is ready in stream order like
        any torch op.
    """
    import cupy

    if not images.is_cuda:
        raise ValueError("apply_torch needs a CUDA tensor; on the CPU use KernelPolicyStage.native() or .emulated()")
    if output not in OUTPUT_TYPES:
        raise ValueError(f"output must be one of {tuple(OUTPUT_TYPES)}, got {output!r}")
    n = int(images.shape[0]) * (int(images.shape[1]) if images.ndim == 5 else 1)
    height, width, channels = images.shape[-3:]
    layout = layout or ("nhwc" if output == "uint8" else "nchw")
    shape = (n, height, width, channels) if layout == "nhwc" else (n, channels, height, width)
    out = torch.empty(shape, dtype=DTYPES[output], device=images.device)
    target = out.view(torch.int16) if output == "bfloat16" else out  # DLPack-friendly 2-byte view
    stage = device_stage(images.device.index or 0)
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
        )
    return out


class CudaStage(PolicyStage):
    """The CuPy kernels behind the stage protocol (:func:`apply_torch`): policy,
    normalization and output layout fused into the last launch, on torch's current stream;
    the loader's copies are read in place.

    Args:
        fill: the geometric ops' fill level, 0..255.
    """

    name = "cupy"

    def __init__(self, fill: int = FILL):
        self.fill = check_fill(fill)

    @property
    def host_seconds(self) -> float:
        return sum(stage.host_seconds for stage in list(_DEVICE_STAGES.values()))

    def apply(self, images, params, out):
        checked_samples(images, params)
        if not images.is_cuda:
            raise ValueError(f"the 'cupy' stage computes on a CUDA GPU; got images on {images.device}")
        layout, norm = stage_arguments(out, images.shape[3])
        result = apply_torch(images, params, output=out.dtype, layout=layout, fill=self.fill, **norm)
        return result.permute(0, 3, 1, 2) if layout == "nhwc" else result


register_stage(
    "cupy",
    devices=("gpu",),
    available=lambda: importable("cupy"),
    build=lambda device, *, fill, **_: CudaStage(fill),
    priority=40,
    label="fastpolicy (CUDA kernels)",
    any_size=True,
    needs="CuPy (pip install cupy-cuda13x)",
    runs=lambda spec: "kernels" in spec.backends,
)

__all__ = ["CudaKernelStage", "CudaStage", "apply_torch", "device_stage"]
