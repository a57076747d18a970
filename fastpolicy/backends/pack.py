"""The one packer: every op slot of a batch, computed on the host into one buffer.

A policy stage applies slot ``k`` of all samples at once. :func:`pack` turns
:class:`~fastpolicy.params.PolicyParams` into what the ops consume for a known image
size, for every slot, laid out in **one** contiguous uint8 buffer (16-byte aligned
fields), so a GPU stage uploads a batch's arguments with one asynchronous copy from
pinned memory (:meth:`Packed.views` rebuilds the fields over the device copy), and the
CPU stages use the host buffer as it is.

Everything geometric comes from the reference on the host — fixed-point matrices
(:func:`~fastpolicy.reference.geometry.fixed_point`), translation tables
(:func:`~fastpolicy.reference.geometry.translation_indices`), float matrices
(:func:`~fastpolicy.reference.geometry.float_matrix`, DALI) and Cutout boxes
(:func:`~fastpolicy.reference.special.cutout_boxes`) — so no backend can drift from it.
They depend only on (op, value, image size) and values come from magnitude bins, so they
are memoized: a batch costs a few NumPy calls per slot, not a Python loop over samples.

**The skip code.** A skipped slot is op id :data:`~fastpolicy.params.NO_OP` (-1) in
:class:`~fastpolicy.params.PolicyParams`, and ``op + 1`` indexes every per-op table here
(the kernels' apply functions, DALI's ``select`` list), so 0 means "skip" in both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..params import PolicyParams
from ..reference import geometry, special
from ..registry import OP_NAMES, OPS

_SPECS = [OPS[name] for name in OP_NAMES]
_STATS = np.array([False] + [spec.stats is not None for spec in _SPECS])
_AFFINE = np.array([False] + [spec.kind == "affine" for spec in _SPECS])
_CUTOUT = [spec.id for spec in _SPECS if spec.needs == "center"]
_ALIGN = 16
_IDENTITY = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)

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
"""Fields of a kernel slot (see :func:`pack`)."""

DALI_FIELDS = ("select", "value", "matrix", "anchor", "shape", "partner")
"""Fields of a DALI slot (see :func:`pack`)."""


@functools.lru_cache(maxsize=1)
def _kernel_tables():
    from .kernel_ops import APPLY_FUNCTIONS, LUT_BUILDERS, SHIFT

    ops = [spec.backends["cupy"] for spec in _SPECS]
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


@functools.lru_cache(maxsize=8192)
def _float_matrix(op_id: int, value: float, height: int, width: int) -> np.ndarray:
    """DALI form of a geometric op: float32[2, 3] output→input matrix (pixel centres at +0.5)."""
    reference = _SPECS[op_id].reference
    exact = geometry.float_matrix(reference.matrix(value, height, width), height, width)  # type: ignore[attr-defined]
    return np.reshape(exact, (2, 3)).astype(np.float32)


def _affine_groups(op: np.ndarray, value: np.ndarray):
    """``(op id, value, sample indices)`` for each distinct geometric (op, value) of a slot:
    matrices and tables are computed once per group, not per sample."""
    affine = np.flatnonzero(_AFFINE[op + 1])
    if not len(affine):
        return
    keys, inverse = np.unique(np.stack([op[affine], value[affine]], axis=1), axis=0, return_inverse=True)
    for k, (op_id, v) in enumerate(keys):
        yield int(op_id), float(v), affine[inverse.reshape(-1) == k]


def _kernel_slot(
    op: np.ndarray, value: np.ndarray, box: np.ndarray, partner: np.ndarray, height: int, width: int
) -> dict[str, np.ndarray]:
    from .kernel_ops import per_sample

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
    for op_id, v, members in _affine_groups(op, value):
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


def _dali_slot(
    op: np.ndarray, value: np.ndarray, box: np.ndarray, partner: np.ndarray, height: int, width: int
) -> dict[str, np.ndarray]:
    n = len(op)
    matrix = np.broadcast_to(_IDENTITY, (n, 2, 3)).copy()
    for op_id, v, members in _affine_groups(op, value):
        matrix[members] = _float_matrix(op_id, v, height, width)
    return {
        "select": (op + 1).astype(np.int32),
        "value": value.astype(np.float32),
        "matrix": matrix,
        "anchor": box[:, :2].astype(np.float32),
        "shape": (box[:, 2:] - box[:, :2]).astype(np.float32),
        "partner": partner,
    }


@dataclass(frozen=True)
class Packed:
    """A batch's op slots in one buffer.

    Attributes:
        buffer: uint8[nbytes], every field of every slot (16-byte aligned).
        layout: per slot, field name → (byte offset, dtype, shape).
        batch_layout: the same for the batch's fields (kernels: ``in_rows``, int32[N], the
            input row of every sample, and ``identity``, int32[N] = 0 … N−1).
        active: per slot, whether any sample applies an op there.
        n, height, width: the batch the slots were packed for.
    """

    buffer: np.ndarray
    layout: tuple[dict[str, tuple[int, np.dtype, tuple[int, ...]]], ...]
    batch_layout: dict[str, tuple[int, np.dtype, tuple[int, ...]]]
    active: tuple[bool, ...]
    n: int
    height: int
    width: int

    @property
    def k(self) -> int:
        """Op slots."""
        return len(self.layout)

    def views(self, buffer=None) -> list[dict]:
        """Per slot, field name → array viewing ``buffer`` (default: the host buffer; or a
        device copy of it, e.g. a CuPy array, which must support ``view`` and ``reshape``)."""
        buffer = self.buffer if buffer is None else buffer
        return [_views(buffer, slot) for slot in self.layout]

    def batch_views(self, buffer=None) -> dict:
        """The batch's fields (see ``batch_layout``) viewing ``buffer`` (as :meth:`views`)."""
        return _views(self.buffer if buffer is None else buffer, self.batch_layout)


def _views(buffer, layout: dict) -> dict:
    return {
        name: buffer[offset : offset + int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)
        for name, (offset, dtype, shape) in layout.items()
    }


def pack(
    params: PolicyParams,
    height: int,
    width: int,
    fields: str = "kernels",
    allocate=None,
    in_rows: np.ndarray | None = None,
) -> Packed:
    """Pack every op slot of ``params`` for H×W images.

    Args:
        params: N samples' op slots.
        fields: ``"kernels"`` (:data:`KERNEL_FIELDS`: apply codes, table parameters,
            fixed-point matrices, shift tables, boxes, histogram and table sample lists) or
            ``"dali"`` (:data:`DALI_FIELDS`: ``select`` = op id + 1, float32 value, float32
            [N, 2, 3] matrix, Cutout anchor and shape as float32 [N, 2], partner).
        allocate: ``allocate(nbytes) -> uint8 array`` for the buffer (e.g. a pinned torch
            tensor's NumPy view); default ``numpy.empty``.
        in_rows: kernels only: int[N], the row of the stage's input that holds sample n
            (default: row n).

    Returns:
        the :class:`Packed` slots; ``Packed.views()[k]`` are slot k's arrays.
    """
    if fields not in ("kernels", "dali"):
        raise ValueError(f"fields must be 'kernels' or 'dali', got {fields!r}")
    build = _kernel_slot if fields == "kernels" else _dali_slot
    slots = []
    for k in range(params.k):
        op = params.op[:, k].astype(np.int64)
        value = params.value[:, k]
        box = np.zeros((params.n, 4), np.int32)
        cut = np.flatnonzero(np.isin(op, _CUTOUT))
        if len(cut):
            box[cut] = special.cutout_boxes(value[cut], params.center[cut, k], height, width)
        slots.append(build(op, value, box, params.partner[:, k].astype(np.int32), height, width))
    batch = {}
    if fields == "kernels":
        identity = np.arange(params.n, dtype=np.int32)
        batch = {"in_rows": identity if in_rows is None else np.asarray(in_rows, np.int32), "identity": identity}
        if batch["in_rows"].shape != (params.n,):
            raise ValueError(f"in_rows must have shape ({params.n},), got {batch['in_rows'].shape}")
    layout, offset = [], 0
    for arrays in [*slots, batch]:
        entry = {}
        for name, array in arrays.items():
            entry[name] = (offset, array.dtype, array.shape)
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        layout.append(entry)
    buffer = (allocate or (lambda size: np.empty(size, np.uint8)))(max(offset, _ALIGN))
    for arrays, entry in zip([*slots, batch], layout):
        for name, array in arrays.items():
            start = entry[name][0]
            buffer[start : start + array.nbytes] = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    active = tuple(bool(np.any(params.op[:, k] >= 0)) for k in range(params.k))
    return Packed(buffer, tuple(layout[:-1]), layout[-1], active, params.n, height, width)
