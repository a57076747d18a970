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

from . import reference, spaces
from .distribution import AWSDistribution
from .jsonio import PolicyFormatError
from .magnitude import N_BINS, Magnitude
from .params import NO_OP, PolicyParams
from .policy import OpChoice, Policy
from .registry import OP_NAMES, OPS, OpSpec, get_op, register_backend
from .sampling import sample_policies
from .schedule import PolicySchedule

__version__ = "0.1.0"


def __getattr__(name):
    if name == "PolicyDALILoader":
        from .loader import PolicyDALILoader

        return PolicyDALILoader
    raise AttributeError(f"module 'fastpolicy' has no attribute {name!r}")


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
    "sample_policies",
    "spaces",
]
