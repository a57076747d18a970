"""Policy-stage backends register themselves here, next to their code.

Each implementation module calls :func:`register_stage` once at import with what callers
need to know about it: the devices it serves, whether it can run here, how to build it,
its priority as the default, a human label, and its capabilities. The implementation
modules are light (DALI and CuPy are imported inside their builders), and :func:`stages`
imports them on first use, so ``import fastpolicy`` works without DALI or CuPy.
:func:`~.stage.make_stage` and :func:`~.stage.resolve_backend` are lookups in this table.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..device import DEVICES
from .protocol import PolicyStage

_MODULES = ("kernel_cuda", "kernel_host", "dali_stage", "pil_stage", "reference_stage")
"""The implementation modules (each registers its backends when imported)."""


@dataclass(frozen=True)
class StageBackend:
    """A registered policy-stage backend.

    Attributes:
        name: what ``make_stage(name, …)``, the loader's ``backend=`` and the CLI take.
        devices: the devices it serves (a subset of :data:`DEVICES`).
        available: ``available() -> bool``: whether it can run in this environment (its
            package imports, a compiler is present); asked on every choice.
        build: ``build(device, *, max_batch, height, width, channels, slots, fill,
            num_threads) -> PolicyStage``.
        priority: the default is the available backend of the highest priority among
            those whose ``default_on`` holds the device.
        label: a human name (bench tables and charts).
        default_on: the devices where it may be chosen by default (a subset of ``devices``;
            e.g. not where it copies every batch through the host, or where it is slow).
        any_size: whether one stage takes batches of any image size (built without a size);
            False: it is built for one H×W×C and refuses others.
        needs: what to install or set when it is not available (for error messages).
        runs: ``runs(spec) -> bool``: whether its stages can run registry op ``spec`` (the
            built-in ops run everywhere; an op added with ``register_op`` may lack a form
            here). The default skips a backend that cannot run every registered op.
    """

    name: str
    devices: tuple[str, ...]
    available: Callable[[], bool]
    build: Callable[..., PolicyStage]
    priority: int
    label: str
    default_on: tuple[str, ...]
    any_size: bool
    needs: str
    runs: Callable[[Any], bool] = lambda spec: True


_STAGES: dict[str, StageBackend] = {}
_LOCK = threading.Lock()
_loaded = False


def register_stage(
    name: str,
    *,
    devices: tuple[str, ...],
    available: Callable[[], bool],
    build: Callable[..., PolicyStage],
    priority: int,
    label: str,
    default_on: tuple[str, ...] | None = None,
    any_size: bool,
    needs: str = "",
    runs: Callable[[Any], bool] | None = None,
) -> StageBackend:
    """Register a policy-stage backend (see :class:`StageBackend`; ``default_on`` defaults to
    ``devices``); returns its entry. A second registration under the same name raises."""
    devices, default_on = tuple(devices), tuple(devices if default_on is None else default_on)
    if not name or not isinstance(name, str):
        raise ValueError(f"a backend needs a name, got {name!r}")
    if not devices or not set(devices) <= set(DEVICES):
        raise ValueError(f"backend {name!r}: devices must be a non-empty subset of {DEVICES}, got {devices}")
    if not set(default_on) <= set(devices):
        raise ValueError(f"backend {name!r}: default_on {default_on} names devices it does not serve {devices}")
    entry = StageBackend(
        name,
        devices,
        available,
        build,
        int(priority),
        label,
        default_on,
        bool(any_size),
        needs,
        runs or (lambda spec: True),
    )
    with _LOCK:
        if name in _STAGES:
            raise ValueError(f"policy-stage backend {name!r} is already registered ({_STAGES[name].label})")
        _STAGES[name] = entry
    return entry


def importable(module: str) -> bool:
    """Whether ``module`` (dotted) can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def unregister_stage(name: str) -> StageBackend:
    """Remove backend ``name`` (tests registering a stand-in); returns its entry."""
    with _LOCK:
        return _STAGES.pop(name)


def stages() -> Mapping[str, StageBackend]:
    """Every registered backend by name, highest priority first (the implementation modules
    are imported on the first call)."""
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"{__package__}.{module}")
        _loaded = True
    with _LOCK:
        ordered = sorted(_STAGES.values(), key=lambda s: -s.priority)
    return MappingProxyType({s.name: s for s in ordered})


def get_stage(name: str) -> StageBackend:
    """The entry of backend ``name``; ValueError naming the choices otherwise."""
    known = stages()
    if name not in known:
        raise ValueError(f"backend must be one of {tuple(known)}, got {name!r}")
    return known[name]


def best_stage(device: str, *, any_size: bool = False) -> StageBackend:
    """The available backend of the highest priority chosen by default on ``device``
    (``any_size``: only those that take any image size per call) that runs every registered
    op (ops added with ``register_op`` may pass over a backend, with a log line saying so);
    RuntimeError naming what each candidate needs when none is available."""
    from ..registry import OPS

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    candidates = [s for s in stages().values() if device in s.default_on and (s.any_size or not any_size)]
    passed = []
    for entry in candidates:
        if not entry.available():
            continue
        cannot = [name for name, spec in OPS.items() if not entry.runs(spec)]
        if cannot:
            passed.append(f"{entry.name!r} cannot run op {cannot[0]!r}")
            continue
        if passed:
            logging.getLogger("fastpolicy").info("policy stage %r: %s", entry.name, "; ".join(passed))
        return entry
    what = "policy-stage backend" + (" that takes any image size" if any_size else "")
    missing = "; ".join(
        [
            *passed,
            *(f"{s.name!r} ({s.label}) needs {s.needs or 'nothing named'}" for s in candidates if not s.available()),
        ]
    )
    raise RuntimeError(f"no {what} is available on the {device}: {missing or 'none is registered'}")


__all__ = [
    "DEVICES",
    "StageBackend",
    "best_stage",
    "get_stage",
    "importable",
    "register_stage",
    "stages",
    "unregister_stage",
]
