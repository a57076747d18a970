"""The ``"native"`` and ``"emulated"`` backends: the host builds of the kernels
(:mod:`.kernel_build`) behind the stage protocol, driven by :mod:`.kernel_stage`.

``"native"`` is the fast CPU stage (g++ and OpenMP, one block per sample); ``"emulated"``
runs every CUDA thread of the same sources (slow; checks the kernels without a GPU).
Both write policy, normalization and layout in the last launch, straight into a pooled
output buffer (:class:`HostBuffers`), and read the loader's copies in place.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable

import numpy as np
import torch

from ..reference.geometry import FILL, check_fill
from .kernel_build import KernelCompileError, emulated_module, host_compiler, native_module
from .kernel_stage import KernelPolicyStage, stage_arguments
from .protocol import PolicyStage, checked_samples
from .registration import register_stage


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


class HostKernelStage(PolicyStage):
    """A host build of the kernels behind the stage protocol: policy, normalization and
    output layout fused into the last launch, written straight into the returned tensor
    (from :class:`HostBuffers`). The loader's copies are read in place.

    Args:
        name: the backend's name.
        stage: the :class:`KernelPolicyStage` of a host build.
        fill: the geometric ops' fill level, 0..255.
    """

    def __init__(self, name: str, stage: KernelPolicyStage, fill: int = FILL):
        self.name, self.fill, self._stage = name, check_fill(fill), stage
        self._buffers = HostBuffers()

    @property
    def host_seconds(self) -> float:
        return self._stage.host_seconds

    def apply(self, images, params, out):
        n = checked_samples(images, params)
        if images.is_cuda:
            raise ValueError(f"the {self.name!r} stage computes on the CPU; got images on {images.device}")
        height, width, channels = images.shape[-3:]
        layout, norm = stage_arguments(out, channels)
        shape = (n, height, width, channels) if layout == "nhwc" else (n, channels, height, width)
        result = self._buffers.empty(shape, out.torch_dtype)
        target = result.view(torch.int16) if out.dtype == "bfloat16" else result  # NumPy has no bfloat16
        self._stage.apply(
            images.contiguous().numpy(),
            params,
            out=target.numpy(),
            output=out.dtype,
            layout=layout,
            fill=self.fill,
            **norm,
        )
        return result.permute(0, 3, 1, 2) if layout == "nhwc" else result


_COMPILER = "a C++20 compiler with OpenMP (g++; set CXX to use another)"

_REPORTED: set[str] = set()


def _builds(name: str, module: Callable[[], object]) -> Callable[[], bool]:
    """``available()`` of a host build: a compiler is there and the build compiles (or is
    cached); a failing build warns once and leaves the choice to the next backend."""

    def available() -> bool:
        if host_compiler() is None:
            return False
        try:
            module()
        except KernelCompileError as error:
            message = str(error)
            if message not in _REPORTED:
                _REPORTED.add(message)
                warnings.warn(
                    f"the {name!r} policy stage does not build here, so it is not chosen by default: {message}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return False
        return True

    return available


register_stage(
    "native",
    devices=("cpu",),
    available=_builds("native", native_module),
    build=lambda device, *, fill, **_: HostKernelStage("native", KernelPolicyStage.native(), fill),
    priority=30,
    label="fastpolicy (native CPU stage)",
    any_size=True,
    needs=_COMPILER,
    runs=lambda spec: "kernels" in spec.backends,
)

register_stage(
    "emulated",
    devices=("cpu",),
    default_on=(),  # every CUDA thread emulated: slow, for checking the kernels without a GPU
    available=_builds("emulated", emulated_module),
    build=lambda device, *, fill, **_: HostKernelStage("emulated", KernelPolicyStage.emulated(), fill),
    priority=0,
    label="fastpolicy (emulated CUDA kernels)",
    any_size=True,
    needs="a C++20 compiler (g++; set CXX to use another)",
    runs=lambda spec: "kernels" in spec.backends,
)
