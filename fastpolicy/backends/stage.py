"""The one factory of policy stages: a lookup in the registered backends.

Every backend registers itself next to its code (:func:`~.registration.register_stage`):

* ``"cupy"`` — the fused CUDA kernels (GPU): policy, normalization and layout in one
  launch (:mod:`.kernel_cuda`);
* ``"native"`` — the same kernel sources built for the host (g++ and OpenMP), the fast CPU
  stage (:mod:`.kernel_host`);
* ``"dali"`` — DALI operators with per-sample selection (CPU or GPU; on a GPU its output
  stays on the device; built for one image size) (:mod:`.dali_stage`);
* ``"emulated"`` — the CUDA kernels run by the host emulator (slow; checks the kernel path
  without a GPU) (:mod:`.kernel_host`);
* ``"numpy"`` — the reference (slow; the specification) (:mod:`.reference_stage`).

:func:`make_stage` builds one by name; :func:`resolve_backend` checks a name against a
device, or picks the default by the registered priorities and availability. The protocol
(:class:`PolicyStage`, :class:`OutputSpec`, :func:`finish`, :func:`copy_rows`) lives in
:mod:`.protocol` and is re-exported here.
"""

from __future__ import annotations

from ..reference.geometry import FILL
from .protocol import DTYPES, LAYOUTS, OutputSpec, PolicyStage, copy_rows, finish, normalization
from .registration import DEVICES, StageBackend, best_stage, get_stage, stages

_WHERE = {"cpu": "the CPU", "gpu": "a CUDA GPU"}


def resolve_backend(backend: str | None, device: str) -> str:
    """The backend ``backend`` names, checked against ``device`` (``"cpu"`` or ``"gpu"``);
    None picks the default there: the available backend of the highest registered priority
    (``"cupy"`` on a GPU with CuPy, else ``"dali"``; ``"native"`` on the CPU with a C++
    compiler, else ``"dali"``). ValueError naming the choices for an unknown name or a
    backend that does not serve ``device``."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if backend is None:
        return best_stage(device).name
    entry = get_stage(backend)
    if device not in entry.devices:
        here = tuple(name for name, s in stages().items() if device in s.devices)
        raise ValueError(
            f"backend={backend!r} runs on {' or '.join(_WHERE[d] for d in entry.devices)}, not on "
            f"{_WHERE[device]}; there use one of {here}"
        )
    return backend


def stage_backend(backend: str) -> StageBackend:
    """The registration of ``backend`` (its label, devices, capabilities); ValueError naming
    the choices for an unknown name."""
    return get_stage(backend)


def default_stage(device: str, *, any_size: bool = False) -> StageBackend:
    """The registration :func:`resolve_backend` picks on ``device`` by default; with
    ``any_size`` only among backends whose stage takes any image size per call
    (RuntimeError naming what each needs when none is available)."""
    return best_stage(device, any_size=any_size)


def make_stage(
    backend: str | None,
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
    """The :class:`PolicyStage` of ``backend`` on ``device`` (see :func:`resolve_backend`) for
    batches of up to ``max_batch`` images of H×W×C with ``slots`` op slots (a backend whose
    stage takes any size ignores the size), geometric fill level ``fill`` (0..255) and
    ``num_threads`` CPU threads where the backend uses them."""
    entry = get_stage(resolve_backend(backend, device))
    return entry.build(
        device,
        max_batch=max_batch,
        height=height,
        width=width,
        channels=channels,
        slots=slots,
        fill=fill,
        num_threads=num_threads,
    )


__all__ = [
    "DTYPES",
    "LAYOUTS",
    "OutputSpec",
    "PolicyStage",
    "copy_rows",
    "default_stage",
    "finish",
    "make_stage",
    "normalization",
    "resolve_backend",
    "stage_backend",
]
