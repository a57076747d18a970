"""NumPy reference implementations: the specification every backend must compute.

Images are uint8, HWC (C = 1 or 3; a 2-D HW image is treated as C = 1 and returned
2-D) for single images and NHWC for batches. Inputs are never modified.

* :func:`apply_value` — one op by its value (physical parameter).
* :func:`apply_op` — one op by its magnitude bin in a search space, as AutoAugment's code calls it.
* :func:`apply_batch` — a batch with per-sample op sequences (:class:`~fastpolicy.params.PolicyParams`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .geometry import FILL

if TYPE_CHECKING:
    from .apply import apply_batch, apply_op, apply_value

_APPLIERS = ("apply_value", "apply_op", "apply_batch")


def __getattr__(name: str):
    """The appliers load on first use: they dispatch through :mod:`fastpolicy.registry`, which
    itself imports this package's op modules (:mod:`.geometry`, :mod:`.color`, :mod:`.special`),
    so importing them here eagerly would make the two packages import each other."""
    if name in _APPLIERS:
        from . import apply

        return getattr(apply, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FILL", "apply_batch", "apply_op", "apply_value"]
