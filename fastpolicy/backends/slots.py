"""Per-slot arguments every backend needs, computed on the host from :class:`PolicyParams`.

A policy stage applies slot ``k`` of all samples at once; :func:`slot_arrays` turns the
sampled values into what the ops consume for a known image size: the op to select,
the value, the warp matrix of geometric ops, the Cutout box and
the SamplePairing partner. Geometric matrices and Cutout boxes come from the
reference (:func:`~fastpolicy.reference.geometry.float_matrix`,
:func:`~fastpolicy.reference.special.cutout_box`), so backends cannot drift from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import NO_OP, PolicyParams
from ..reference import geometry, special
from ..registry import OP_NAMES, OPS

SKIP = len(OP_NAMES)
"""Select index of a skipped slot (one past the last op id)."""

_IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)


@dataclass(frozen=True)
class SlotArrays:
    """Arguments of one op slot for a batch of N images of H×W pixels.

    Attributes:
        select: int32[N], op id to apply, or :data:`SKIP`.
        value32: float32[N], the op's value (PIL computes its blends in float32).
        matrix: float32[N, 2, 3], output→input warp matrix (pixel centres at +0.5) of
            geometric ops; identity elsewhere.
        anchor: float32[N, 2], Cutout box top-left (y, x) in pixels; 0 elsewhere.
        shape: float32[N, 2], Cutout box size (h, w) in pixels; 0 elsewhere.
        partner: int32[N], SamplePairing partner index in the batch.
    """

    select: np.ndarray
    value32: np.ndarray
    matrix: np.ndarray
    anchor: np.ndarray
    shape: np.ndarray
    partner: np.ndarray


def slot_arrays(params: PolicyParams, slot: int, height: int, width: int) -> SlotArrays:
    """The :class:`SlotArrays` of slot ``slot`` (0 ≤ slot < params.k) for H×W images."""
    op = params.op[:, slot].astype(np.int32)
    value = params.value[:, slot]
    matrix = np.broadcast_to(_IDENTITY, (params.n, 2, 3)).copy()
    anchor = np.zeros((params.n, 2), np.float32)
    shape = np.zeros((params.n, 2), np.float32)
    for i in np.flatnonzero(op != NO_OP):
        spec = OPS[OP_NAMES[op[i]]]
        if spec.kind == "affine":
            exact = geometry.float_matrix(spec.reference.matrix(value[i], height, width), height, width)
            matrix[i] = np.reshape(exact, (2, 3))
        elif spec.needs == "center":
            y0, x0, y1, x1 = special.cutout_box(value[i], params.center[i, slot], height, width)
            anchor[i], shape[i] = (y0, x0), (max(y1 - y0, 0), max(x1 - x0, 0))
    return SlotArrays(
        select=np.where(op == NO_OP, SKIP, op).astype(np.int32),
        value32=value.astype(np.float32),
        matrix=matrix, anchor=anchor, shape=shape, partner=params.partner[:, slot].astype(np.int32))
