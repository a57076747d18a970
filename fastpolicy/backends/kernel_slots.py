"""Per-slot arrays of the fused kernels, packed on the host from :class:`PolicyParams`.

Everything derived from the reference on the host — fixed-point matrices
(:func:`~fastpolicy.reference.geometry.fixed_point`), translation tables
(:func:`~fastpolicy.reference.geometry.translation_indices`) and Cutout boxes
(:func:`~fastpolicy.reference.special.cutout_boxes`) — so the kernels cannot drift from it.
Matrices and tables depend only on (op, value, image size), and values come from
magnitude bins, so they are memoized: a batch costs a few NumPy calls, not a Python
loop over its samples.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np

from ..params import NO_OP, PolicyParams
from ..reference import geometry, special
from ..registry import OP_NAMES, OPS
from .kernel_ops import APPLY_FUNCTIONS, LUT_BUILDERS, SHIFT, per_sample

_SPECS = [OPS[name] for name in OP_NAMES]
_KERNEL_OPS = [spec.backends["cupy"] for spec in _SPECS]
# Lookup arrays indexed by op id + 1 (index 0: a skipped slot).
_CODE = np.array([0] + [APPLY_FUNCTIONS.index(k.apply) for k in _KERNEL_OPS], np.int32)
_LUT_KIND = np.array([-1] + [LUT_BUILDERS.index(k.lut) if k.lut else -1 for k in _KERNEL_OPS], np.int32)
_STATS = np.array([False] + [spec.stats is not None for spec in _SPECS])
_AFFINE = np.array([False] + [spec.kind == "affine" for spec in _SPECS])
_SHIFT_CODE = APPLY_FUNCTIONS.index(SHIFT)
_CUTOUT = [spec.id for spec in _SPECS if spec.needs == "center"]


@dataclass(frozen=True)
class KernelSlot:
    """Kernel arguments of one op slot for N images of H×W pixels (host NumPy arrays).

    Attributes:
        code: int32[N], index of each sample's apply function (0: copy).
        value: float32[N], the op's value (blend factors).
        ivalue: int32[N], integer parameter of Solarize/Posterize tables.
        lut_kind: int32[N], table builder of lut ops, -1 elsewhere.
        stat_row: int32[N], row of the sample in the histogram buffer, -1 if none needed.
        fixed: int64[N, 6], 16.16 fixed-point matrix of warped samples (zeros elsewhere).
        shift: int32[N], row of a translated sample's tables in ``rows``/``cols``.
        rows: int32[T, H], cols: int32[T, W], source row/column tables (-1: fill), T ≥ 1.
        box: int32[N, 4], Cutout box (y0, x0, y1, x1), half-open.
        partner: int32[N], SamplePairing partner.
        stat_samples: int32[S], samples needing a histogram (S = their count).
        lut_samples: int32[L], samples of lut ops.
    """

    code: np.ndarray
    value: np.ndarray
    ivalue: np.ndarray
    lut_kind: np.ndarray
    stat_row: np.ndarray
    fixed: np.ndarray
    shift: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    box: np.ndarray
    partner: np.ndarray
    stat_samples: np.ndarray
    lut_samples: np.ndarray

    @property
    def active(self) -> bool:
        """False when every sample skips this slot."""
        return bool(np.any(self.code != 0))

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@functools.lru_cache(maxsize=8192)
def _warp(op_id: int, value: float, height: int, width: int):
    matrix = _SPECS[op_id].reference.matrix(value, height, width)
    if geometry.is_translation(matrix):
        return geometry.translation_indices(matrix, height, width)
    geometry.float_matrix(matrix, height, width)  # raises where PIL leaves fixed point
    return geometry.fixed_point(matrix)


def kernel_slot(params: PolicyParams, slot: int, height: int, width: int) -> KernelSlot:
    """The :class:`KernelSlot` of slot ``slot`` (0 ≤ slot < params.k) for H×W images."""
    n = params.n
    op = params.op[:, slot].astype(np.int64)
    value = params.value[:, slot]
    code, lut_kind = _CODE[op + 1].copy(), _LUT_KIND[op + 1]
    ivalue = np.zeros(n, np.int32)
    for op_id in np.unique(op[lut_kind >= 0]):
        mask = op == op_id
        ivalue[mask] = per_sample(OP_NAMES[op_id], value[mask])

    fixed = np.zeros((n, 6), np.int64)
    shift = np.zeros(n, np.int32)
    rows, cols = [np.full(height, -1, np.int32)], [np.full(width, -1, np.int32)]
    affine = np.flatnonzero(_AFFINE[op + 1])
    if len(affine):
        keys, inverse = np.unique(np.stack([op[affine], value[affine]], axis=1), axis=0, return_inverse=True)
        for k, (op_id, v) in enumerate(keys):
            members = affine[inverse.reshape(-1) == k]
            warp = _warp(int(op_id), float(v), height, width)
            if isinstance(warp, tuple):
                code[members] = _SHIFT_CODE
                shift[members] = len(rows)
                rows.append(warp[0].astype(np.int32))
                cols.append(warp[1].astype(np.int32))
            else:
                fixed[members] = warp

    box = np.zeros((n, 4), np.int32)
    cut = np.flatnonzero(np.isin(op, _CUTOUT))
    if len(cut):
        box[cut] = special.cutout_boxes(value[cut], params.center[cut, slot], height, width)

    stat_samples = np.flatnonzero(_STATS[op + 1]).astype(np.int32)
    stat_row = np.full(n, -1, np.int32)
    stat_row[stat_samples] = np.arange(len(stat_samples), dtype=np.int32)
    return KernelSlot(code=code, value=value.astype(np.float32), ivalue=ivalue, lut_kind=lut_kind.copy(),
                      stat_row=stat_row, fixed=fixed, shift=shift, rows=np.stack(rows), cols=np.stack(cols),
                      box=box, partner=params.partner[:, slot].astype(np.int32), stat_samples=stat_samples,
                      lut_samples=np.flatnonzero(lut_kind >= 0).astype(np.int32))


def copy_slot(n: int, height: int, width: int) -> KernelSlot:
    """A slot that copies every sample (used when a batch applies no op at all)."""
    return kernel_slot(PolicyParams(op=np.full((n, 1), NO_OP), bin=np.full((n, 1), -1), sign=np.ones((n, 1)),
                                    value=np.zeros((n, 1)), center=np.zeros((n, 1, 2)),
                                    partner=np.zeros((n, 1)), policy=np.zeros(n)), 0, height, width)
