"""fastpolicy: learned, per-sample augmentation policies fast enough for ImageNet.

Public surface:

* :data:`OPS` — the op registry (name → :class:`~fastpolicy.registry.OpSpec`).
* :mod:`fastpolicy.reference` — NumPy reference implementations (the specification).
* :mod:`fastpolicy.spaces` — ``adversarial()`` and ``aws()`` search spaces.
* :class:`Policy`, :class:`AWSDistribution`, :class:`PolicySchedule` — policy models
  with JSON I/O; ``sample(...)`` gives :class:`PolicyParams`, the per-sample arrays
  every backend applies.
* :class:`PolicyDALILoader` — the M×N enlarged-batch loader (needs DALI; imported on
  first use, so the package imports without it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_HOMES = {
    "AWSDistribution": "distribution",
    "PolicyFormatError": "jsonio",
    "N_BINS": "magnitude",
    "Magnitude": "magnitude",
    "NO_OP": "params",
    "PolicyParams": "params",
    "OpChoice": "policy",
    "Policy": "policy",
    "OP_NAMES": "registry",
    "OPS": "registry",
    "OpSpec": "registry",
    "get_op": "registry",
    "register_backend": "registry",
    "register_op": "registry",
    "unregister_op": "registry",
    "sample_policies": "sampling",
    "PolicySchedule": "schedule",
    "PolicyDALILoader": "loader",
    "reference": None,
    "spaces": None,
}
"""Public name → the submodule that defines it (None: the name is a submodule). Imported on first
use (PEP 562), so ``import fastpolicy`` — and the command line's start, where Ctrl-C must be
caught — does not import torch."""

if TYPE_CHECKING:
    from . import reference, spaces
    from .distribution import AWSDistribution
    from .jsonio import PolicyFormatError
    from .loader import PolicyDALILoader
    from .magnitude import N_BINS, Magnitude
    from .params import NO_OP, PolicyParams
    from .policy import OpChoice, Policy
    from .registry import OP_NAMES, OPS, OpSpec, get_op, register_backend, register_op, unregister_op
    from .sampling import sample_policies
    from .schedule import PolicySchedule


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'fastpolicy' has no attribute {name!r}")
    home = _HOMES[name]
    module = importlib.import_module(f".{home or name}", __name__)
    value = module if home is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


__all__ = [
    "NO_OP",
    "N_BINS",
    "OPS",
    "OP_NAMES",
    "AWSDistribution",
    "Magnitude",
    "OpChoice",
    "OpSpec",
    "Policy",
    "PolicyDALILoader",
    "PolicyFormatError",
    "PolicyParams",
    "PolicySchedule",
    "get_op",
    "reference",
    "register_backend",
    "register_op",
    "sample_policies",
    "spaces",
    "unregister_op",
]
