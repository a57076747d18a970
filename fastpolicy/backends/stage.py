"""The one policy-stage protocol, and the one factory that knows backend names.

Every backend is a :class:`PolicyStage`: ``stage.apply(images, params, out)`` takes a
torch uint8 batch [N, H, W, C] and :class:`~fastpolicy.params.PolicyParams` (or None) and
returns the augmented batch as a torch tensor [N, C, H, W] **on the images' device**, of
the dtype, memory layout and normalization :class:`OutputSpec` ``out`` asks for:

* ``"cupy"`` — the fused CUDA kernels (GPU): policy, normalization and layout in one launch;
* ``"native"`` — the same kernel sources built for the host (g++ and OpenMP), the fast CPU stage;
* ``"dali"`` — DALI operators with per-sample selection (CPU or GPU; on a GPU its output
  stays on the device);
* ``"emulated"`` — the CUDA kernels run by the host emulator (slow; checks the kernel path
  without a GPU);
* ``"numpy"`` — the reference (slow; the specification).

:func:`make_stage` is the only place these names are resolved.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..params import NO_OP, PolicyParams
from ..reference.geometry import FILL
from .kernel_stage import normalization

BACKENDS = ("cupy", "native", "dali", "emulated", "numpy")
"""Policy-stage backends (see the module docstring)."""

DTYPES = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Output element types: uint8 pixels as they are, or normalized floats."""

LAYOUTS = ("nchw", "channels_last")
"""Output memory layouts of the [N, C, H, W] batch: contiguous, or torch's channels-last."""


@dataclass(frozen=True)
class OutputSpec:
    """What a stage writes.

    Attributes:
        dtype: a key of :data:`DTYPES`; the float types hold ``(v / 255 - mean) / std``,
            computed in float32 as ``(v - 255·mean) · (1 / (255·std))`` and rounded to
            nearest even.
        layout: ``"nchw"`` (contiguous) or ``"channels_last"``
            (``torch.channels_last``, what a channels-last model consumes without a copy).
        mean, std: per-channel normalization in [0, 1] units (float types only).
    """

    dtype: str = "float32"
    layout: str = "nchw"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"output dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"output layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.normalized and (self.mean is None or self.std is None):
            raise ValueError(f"output dtype {self.dtype!r} needs mean and std")
        if self.normalized:
            normalization(self.mean, self.std)  # validates

    @property
    def normalized(self) -> bool:
        """True for the float types."""
        return self.dtype != "uint8"

    @property
    def memory_format(self) -> torch.memory_format:
        """The torch memory format of the result."""
        return torch.channels_last if self.layout == "channels_last" else torch.contiguous_format

    def pixel_normalization(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """float32[C] ``255·mean`` and ``1 / (255·std)`` (see :func:`~.kernel_stage.normalization`)."""
        mean, inv_std = normalization(self.mean, self.std)
        if len(mean) != channels or len(inv_std) != channels:
            raise ValueError(f"mean and std need {channels} values, got {self.mean} and {self.std}")
        return mean, inv_std


class PolicyStage:
    """Applies per-sample policies to uint8 batches (see the module docstring).

    Attributes:
        name: the backend.
        host_seconds: seconds spent on the host preparing the stage's arguments (packing,
            upload calls), summed over calls; the stage's own compute is the rest of its time.
    """

    name = ""

    @property
    def host_seconds(self) -> float:
        return 0.0

    def apply(self, images: torch.Tensor, params: PolicyParams | None, out: OutputSpec) -> torch.Tensor:
        """``images`` with ``params`` applied (None or all slots skipped: only converted), as
        ``out`` asks: torch [B, C, H, W] on the images' device.

        ``images`` (torch uint8, C = 1 or 3, not modified) is either B samples [B, H, W, C],
        or the loader's copies [N, M, H, W, C] (M copies of each of N images, image-major as
        the source stacks them), whose B = M·N samples are policy-major: sample m·N + n is
        ``images[n, m]`` (see :func:`copy_rows`). The fused stages read the copies in place,
        the others gather them first."""
        raise NotImplementedError


def copy_rows(images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
    """The one place the copies' row order is translated: a [N, M, H, W, C] batch as its
    [N·M, H, W, C] rows and int32[M·N], the row holding sample m·N + n (``n·M + m``); a
    [B, H, W, C] batch as it is, with None (sample b is row b)."""
    if images.dim() != 5:
        return images, None
    n, m = int(images.shape[0]), int(images.shape[1])
    rows = (np.arange(n, dtype=np.int32)[None, :] * m + np.arange(m, dtype=np.int32)[:, None]).reshape(-1)
    return images.reshape(n * m, *images.shape[2:]), rows


def _check(images: torch.Tensor, params: PolicyParams | None) -> torch.Tensor:
    """The images in sample order (copies gathered by :func:`copy_rows`)."""
    images, in_rows = copy_rows(images)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[3] not in (1, 3):
        raise ValueError(
            f"images must be uint8 [N, H, W, C] or [N, M, H, W, C] with C = 1 or 3, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if in_rows is not None:
        images = images[torch.as_tensor(np.asarray(in_rows, np.int64), device=images.device)]
    if params is not None and params.n != images.shape[0]:
        raise ValueError(f"params describe {params.n} samples but the batch has {images.shape[0]}")
    return images


def _any_op(params: PolicyParams | None) -> bool:
    return params is not None and bool(np.any(params.op != NO_OP))


def finish(images: torch.Tensor, out: OutputSpec) -> torch.Tensor:
    """uint8 [N, H, W, C] → ``out`` with torch ops (the stages without a fused output):
    normalized in NHWC order (contiguous, so fast) with the kernels' float32 arithmetic,
    then viewed as [N, C, H, W] (channels-last for free) or made contiguous."""
    channels = images.shape[3]
    if out.normalized:
        mean, inv_std = (torch.from_numpy(a).to(images.device) for a in out.pixel_normalization(channels))
        images = images.to(torch.float32).sub_(mean).mul_(inv_std).to(DTYPES[out.dtype])
    return images.permute(0, 3, 1, 2).contiguous(memory_format=out.memory_format)


class ReferenceStage(PolicyStage):
    """The NumPy reference (:func:`fastpolicy.reference.apply_batch`), then :func:`finish`."""

    name = "numpy"

    def __init__(self, fill: int = FILL):
        self.fill = fill

    def apply(self, images, params, out):
        from .. import reference

        images = _check(images, params)
        if _any_op(params):
            images = torch.from_numpy(reference.apply_batch(images.cpu().numpy(), params, fill=self.fill)).to(
                images.device
            )
        return finish(images, out)


class DaliStage(PolicyStage):
    """DALI operators (:class:`~.dali_stage.DaliPolicyStage`), then :func:`finish`; on a GPU
    the images are fed and read back as device memory (no host round trip)."""

    name = "dali"

    def __init__(
        self,
        max_batch: int,
        height: int,
        width: int,
        channels: int,
        slots: int,
        device: str,
        num_threads: int,
        fill: int,
    ):
        from .dali_stage import DaliPolicyStage

        self.device = device
        self._stage = DaliPolicyStage(
            max_batch,
            height,
            width,
            channels=channels,
            slots=slots,
            device=device,
            device_id=torch.cuda.current_device() if device == "gpu" else None,
            num_threads=num_threads,
            fill=fill,
        )
        self.builds = self._stage.builds

    def apply(self, images, params, out):
        images = _check(images, params)
        if _any_op(params):
            self._stage.feed(images if images.is_cuda else images.numpy(), params)
            result = self._stage.run().as_tensor()
            images = torch.empty(result.shape(), dtype=torch.uint8, device=images.device)
            from nvidia.dali.plugin.pytorch import feed_ndarray

            feed_ndarray(result, images, cuda_stream=torch.cuda.current_stream() if images.is_cuda else None)
        return finish(images, out)


class HostBuffers:
    """Output memory of the CPU stages, reused: a batch's tensor is a view of a pooled buffer
    that goes back to the pool only when no tensor or view of it is left (a finalizer on
    the NumPy view torch holds). Fresh large allocations cost a page fault per 4 KiB on
    first touch and an unmap on free — tens of milliseconds for an M·N float batch.

    Args:
        keep: free buffers kept per size (more are released).
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._free: dict[int, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialized CPU tensor of ``shape`` and ``dtype`` from the pool."""
        itemsize = torch.empty((), dtype=dtype).element_size()
        nbytes = int(np.prod(shape)) * itemsize
        with self._lock:
            free = self._free.get(nbytes)
            base = free.pop() if free else None
        if base is None:
            base = np.empty(nbytes, np.uint8)
        view = base.view(np.int16 if itemsize == 2 else np.float32 if itemsize == 4 else np.uint8).reshape(shape)
        weakref.finalize(view, self._release, base)
        tensor = torch.from_numpy(view)
        return tensor.view(dtype) if tensor.dtype != dtype else tensor

    def _release(self, base: np.ndarray) -> None:
        with self._lock:
            free = self._free.setdefault(base.nbytes, [])
            if len(free) < self.keep:
                free.append(base)


class KernelStage(PolicyStage):
    """The kernels of ``kernels/`` (:class:`~.kernel_stage.KernelPolicyStage`): policy,
    normalization and output layout fused into the last launch, written straight into the
    returned tensor. ``kind``: ``"cupy"`` (GPU, torch's current stream), ``"native"`` or
    ``"emulated"`` (CPU)."""

    def __init__(self, kind: str, fill: int = FILL):
        from .kernel_stage import KernelPolicyStage

        self.name, self.fill = kind, fill
        self._stage = None if kind == "cupy" else getattr(KernelPolicyStage, kind)()
        self._buffers = HostBuffers()

    @property
    def host_seconds(self) -> float:
        from .kernel_stage import _DEVICE_STAGES

        stages = [self._stage] if self._stage is not None else list(_DEVICE_STAGES.values())
        return sum(stage.host_seconds for stage in stages)

    def apply(self, images, params, out):
        images, in_rows = copy_rows(images)
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[3] not in (1, 3):
            _check(images, params)  # raises, naming the problem
        _, height, width, channels = images.shape
        n = images.shape[0] if in_rows is None else len(in_rows)
        norm = {}
        if out.normalized:
            norm["mean"], norm["inv_std"] = out.pixel_normalization(channels)
        layout = "nhwc" if out.layout == "channels_last" else "nchw"
        if images.is_cuda:
            from .kernel_stage import apply_torch

            result = apply_torch(
                images, params, output=out.dtype, layout=layout, fill=self.fill, in_rows=in_rows, **norm
            )
        else:
            shape = (n, height, width, channels) if layout == "nhwc" else (n, channels, height, width)
            result = self._buffers.empty(shape, DTYPES[out.dtype])
            target = result.view(torch.int16) if out.dtype == "bfloat16" else result  # NumPy has no bfloat16
            self._stage.apply(
                images.contiguous().numpy(),
                params,
                out=target.numpy(),
                output=out.dtype,
                layout=layout,
                fill=self.fill,
                in_rows=in_rows,
                **norm,
            )
        return result.permute(0, 3, 1, 2) if layout == "nhwc" else result


def resolve_backend(backend: str | None, device: str) -> str:
    """The backend ``backend`` names, checked against ``device``; None picks the fastest
    here: ``"cupy"`` on a GPU with CuPy (else ``"dali"``), ``"native"`` on the CPU with a
    C++ compiler (else ``"dali"``)."""
    if backend is None:
        if device == "gpu":
            try:
                import cupy  # noqa: F401

                return "cupy"
            except ImportError:
                return "dali"
        from .kernel_build import host_compiler

        return "native" if host_compiler() else "dali"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cupy" and device != "gpu":
        raise ValueError(
            "backend='cupy' runs on a CUDA GPU; on the CPU use 'native' or 'dali' (or 'emulated' to test the kernels)"
        )
    return backend


def make_stage(
    backend: str,
    device: str,
    *,
    max_batch: int,
    height: int,
    width: int,
    channels: int = 3,
    slots: int = 2,
    fill: int = FILL,
    num_threads: int = 2,
) -> PolicyStage:
    """The :class:`PolicyStage` of ``backend`` (see :func:`resolve_backend`) for batches of
    up to ``max_batch`` images of H×W×C with ``slots`` op slots."""
    backend = resolve_backend(backend, device)
    if backend in ("cupy", "native", "emulated"):
        return KernelStage(backend, fill)
    if backend == "dali":
        return DaliStage(max_batch, height, width, channels, slots, device, num_threads, fill)
    return ReferenceStage(fill)
