"""What the kernels read per op slot (:data:`KERNEL_SLOTS`, packed by :func:`.pack.pack`).

A slot holds, per sample: the apply function's code (:data:`~.kernel_ops.APPLY_FUNCTIONS`;
0 copies), the op's value and integer parameter, its table builder, its row in the
histograms; PIL's 16.16 fixed-point matrix of a geometric op, or for a pure translation
the index of its (rows, cols) source tables; the Cutout box and the SamplePairing partner;
and the lists of samples that need histograms and tables.
"""

from __future__ import annotations

import functools

import numpy as np

from ..reference import geometry
from ..registry import OP_NAMES, OPS
from .kernel_ops import APPLY_FUNCTIONS, LUT_BUILDERS, SHIFT, per_sample
from .pack import SlotFields, affine_groups

_SPECS = [OPS[name] for name in OP_NAMES]
_STATS = np.array([False] + [spec.stats is not None for spec in _SPECS])

KERNEL_FIELDS = (
    "code",
    "value",
    "ivalue",
    "lut_kind",
    "stat_row",
    "fixed",
    "shift",
    "rows",
    "cols",
    "box",
    "partner",
    "stat_samples",
    "lut_samples",
)
"""Fields of a kernel slot (see the module docstring)."""


@functools.lru_cache(maxsize=1)
def _kernel_tables():
    ops = [spec.backends["kernels"] for spec in _SPECS]
    code = np.array([0] + [APPLY_FUNCTIONS.index(k.apply) for k in ops], np.int32)
    lut_kind = np.array([-1] + [LUT_BUILDERS.index(k.lut) if k.lut else -1 for k in ops], np.int32)
    return code, lut_kind, APPLY_FUNCTIONS.index(SHIFT)


@functools.lru_cache(maxsize=8192)
def _warp(op_id: int, value: float, height: int, width: int):
    """Kernel form of a geometric op: (rows, cols) source tables of a translation, or
    PIL's 16.16 fixed-point matrix (int64[6])."""
    matrix = _SPECS[op_id].reference.matrix(value, height, width)  # type: ignore[attr-defined]  # affine ops'
    if geometry.is_translation(matrix):
        return geometry.translation_indices(matrix, height, width)
    geometry.float_matrix(matrix, height, width)  # raises where PIL leaves fixed point
    return geometry.fixed_point(matrix)


def kernel_slot(
    op: np.ndarray, value: np.ndarray, box: np.ndarray, partner: np.ndarray, height: int, width: int
) -> dict[str, np.ndarray]:
    """One slot's :data:`KERNEL_FIELDS` (arguments as :attr:`.pack.SlotFields.build`)."""
    n = len(op)
    code_table, lut_table, shift_code = _kernel_tables()
    code, lut_kind = code_table[op + 1].copy(), lut_table[op + 1]
    ivalue = np.zeros(n, np.int32)
    for op_id in np.unique(op[lut_kind >= 0]):
        mask = op == op_id
        ivalue[mask] = per_sample(OP_NAMES[op_id], value[mask])
    fixed = np.zeros((n, 6), np.int64)
    shift = np.zeros(n, np.int32)
    rows, cols = [np.full(height, -1, np.int32)], [np.full(width, -1, np.int32)]
    for op_id, v, members in affine_groups(op, value):
        warp = _warp(op_id, v, height, width)
        if isinstance(warp, tuple):
            code[members] = shift_code
            shift[members] = len(rows)
            rows.append(warp[0].astype(np.int32))
            cols.append(warp[1].astype(np.int32))
        else:
            fixed[members] = warp
    stat_samples = np.flatnonzero(_STATS[op + 1]).astype(np.int32)
    stat_row = np.full(n, -1, np.int32)
    stat_row[stat_samples] = np.arange(len(stat_samples), dtype=np.int32)
    return {
        "code": code,
        "value": value.astype(np.float32),
        "ivalue": ivalue,
        "lut_kind": lut_kind.copy(),
        "stat_row": stat_row,
        "fixed": fixed,
        "shift": shift,
        "rows": np.stack(rows),
        "cols": np.stack(cols),
        "box": box,
        "partner": partner,
        "stat_samples": stat_samples,
        "lut_samples": np.flatnonzero(lut_kind >= 0).astype(np.int32),
    }


KERNEL_SLOTS = SlotFields(KERNEL_FIELDS, kernel_slot, rows=True)
"""The kernels' slot fields; the batch carries the row tables (copies read in place)."""

__all__ = ["KERNEL_FIELDS", "KERNEL_SLOTS", "kernel_slot"]
