"""What the kernels read per batch, packed off the timed path (:data:`KERNEL_SLOTS`, :func:`pack_kernels`).

Everything a sample's op needs that depends only on (op, value, image size) is an
**entry** of a per-size :class:`OpTable`, computed once from the reference (float64) and
reused by every later batch: the apply function's code, the table builder and its
integer parameter, the value as float32, PIL's 16.16 fixed-point matrix of a warp, or the
index of a translation's (rows, cols) source tables. A slot then holds, per sample, only
its entry (``code``; 0 = skipped), its Cutout box and its SamplePairing partner, and the
list of samples that build a lookup table (those that need histograms first).

Entries are found without a Python loop over samples: a dense index by (op, bin, sign)
gives a candidate entry, checked against the sample's op and value bits (float64, exact);
only samples whose candidate does not match take the slow path, which adds the entry.
So a batch costs a fixed handful of NumPy calls (``benchmarks/pack_time.py``).

The batch carries the table (one contiguous copy) and a ``header`` per slot: the byte
offsets of every field the kernels read, the one argument they take besides the images
and the output (``FpArgs`` in ``kernels/apply.cu``).
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ..params import PolicyParams
from ..reference import geometry, special
from ..registry import OP_NAMES, OPS
from .kernel_ops import APPLY_FUNCTIONS, LUT_BUILDERS, SHIFT, per_sample
from .pack import Packed, SlotFields

_SPECS = [OPS[name] for name in OP_NAMES]
_ALIGN = 16
_BINS = 258  # bin + 1 in 0..256 (int8 bins -1..127, with room); index = ((op + 1) * _BINS + bin + 1) * 2 + (sign > 0)

if any(spec.stats is not None and spec.kind != "lut" for spec in _SPECS):  # the kernels' list order relies on it
    raise RuntimeError("an op with statistics that is not a table op: kernels/luts.cu takes statistics for tables only")

SLOT_NAMES = ("code", "box", "partner", "lut_samples", "header")
"""Fields of a kernel slot: entry int32[N] (0 skips), Cutout box int32[N, 4] (``y0, x0, y1,
x1``), partner int32[N], samples with a table int32[N] (those with statistics first; the
slot's ``sizes`` say how many of each), and the kernels' header int64[16]."""

TABLE_NAMES = ("e_code", "e_lut", "e_ivalue", "e_value", "e_fixed", "e_shift", "e_stats", "shift_rows", "shift_cols")
"""Fields of the op table (per entry E: apply code, builder kind, builder's integer
parameter, float32 value, int64[E, 6] fixed-point matrix, translation table index, 1 where
the table is built from statistics; the
translation tables int32[T, H] and int32[T, W], -1 = fill)."""

HEADER = (
    "code",
    "box",
    "partner",
    "lut_samples",
    *TABLE_NAMES,
    "src_row",
    "orig_row",
)
"""Order of the byte offsets in a slot's ``header`` (``FpArgs`` in ``kernels/apply.cu``): the
slot's fields, the table's, the row of the slot input each sample reads (``in_rows`` for
the first slot, ``identity`` after it) and the stage input's rows (``in_rows``)."""

HEADER_SIZE = 16


@functools.lru_cache(maxsize=1)
def _kernel_tables():
    ops = [spec.backends["kernels"] for spec in _SPECS]
    code = [APPLY_FUNCTIONS.index(k.apply) for k in ops]
    lut_kind = [LUT_BUILDERS.index(k.lut) if k.lut else -1 for k in ops]
    return code, lut_kind, APPLY_FUNCTIONS.index(SHIFT)


def _warp(op_id: int, value: float, height: int, width: int):
    """Kernel form of a geometric op: (rows, cols) source tables of a translation, or
    PIL's 16.16 fixed-point matrix (int64[6])."""
    matrix = _SPECS[op_id].reference.matrix(value, height, width)  # type: ignore[attr-defined]  # affine ops'
    if geometry.is_translation(matrix):
        return geometry.translation_indices(matrix, height, width)
    geometry.float_matrix(matrix, height, width)  # raises where PIL leaves fixed point
    return geometry.fixed_point(matrix)


class OpTable:
    """Every (op, value) seen for H×W images → an entry (0: skip), and the entry arrays.

    Attributes:
        blob: uint8, the table's fields (:data:`TABLE_NAMES`) packed, 16-byte aligned.
        layout: field → (offset in ``blob``, dtype, shape).
        flags: uint8[E], per entry: 1 its op needs statistics (and a table), 2 a table without
            statistics, 4 a Cutout box.
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, int], int] = {}
        self._rows: list[np.ndarray] = [np.full(height, -1, np.int32)]
        self._cols: list[np.ndarray] = [np.full(width, -1, np.int32)]
        self._fields: dict[str, list] = {
            "e_code": [0],
            "e_lut": [-1],
            "e_ivalue": [0],
            "e_value": [0.0],
            "e_fixed": [np.zeros(6, np.int64)],
            "e_shift": [0],
        }
        self._op: list[int] = [-1]
        self._bits: list[int] = [0]
        self.dense = np.zeros((len(_SPECS) + 1) * _BINS * 2, np.int32)
        self._freeze()

    def _freeze(self) -> None:
        f = self._fields
        arrays: dict[str, np.ndarray] = {
            "e_code": np.array(f["e_code"], np.int32),
            "e_lut": np.array(f["e_lut"], np.int32),
            "e_ivalue": np.array(f["e_ivalue"], np.int32),
            "e_value": np.array(f["e_value"], np.float32),
            "e_fixed": np.stack(f["e_fixed"]).astype(np.int64),
            "e_shift": np.array(f["e_shift"], np.int32),
            "e_stats": np.array([0] + [_SPECS[o].stats is not None for o in self._op[1:]], np.int32),
            "shift_rows": np.stack(self._rows),
            "shift_cols": np.stack(self._cols),
        }
        layout: dict[str, tuple[int, np.dtype, tuple[int, ...]]] = {}
        offset = 0
        for name, array in arrays.items():
            layout[name] = (offset, array.dtype, array.shape)
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        blob = np.zeros(offset, np.uint8)
        for name, array in arrays.items():
            blob[layout[name][0] : layout[name][0] + array.nbytes] = array.view(np.uint8).reshape(-1)
        self.op, self.bits = np.array(self._op, np.int16), np.array(self._bits, np.uint64)
        lut = arrays["e_lut"] >= 0
        stats = np.array([False] + [_SPECS[o].stats is not None for o in self._op[1:]])
        cutout = np.array([False] + [_SPECS[o].needs == "center" for o in self._op[1:]])
        self.flags = (stats * 1 + (lut & ~stats) * 2 + cutout * 4).astype(np.uint8)
        self.blob, self.layout = blob, layout

    def _add(self, op_id: int, value: float, bits: int) -> int:
        if op_id < 0:
            return 0
        key = (op_id, bits)
        if key in self._entries:
            return self._entries[key]
        codes, kinds, shift_code = _kernel_tables()
        code, kind = codes[op_id], kinds[op_id]
        fixed, shift = np.zeros(6, np.int64), 0
        if _SPECS[op_id].kind == "affine":
            warp = _warp(op_id, value, self.height, self.width)
            if isinstance(warp, tuple):
                code, shift = shift_code, len(self._rows)
                self._rows.append(warp[0].astype(np.int32))
                self._cols.append(warp[1].astype(np.int32))
            else:
                fixed = warp
        ivalue = int(per_sample(OP_NAMES[op_id], np.array([value]))[0]) if kind >= 0 else 0
        for name, item in zip(self._fields, (code, kind, ivalue, value, fixed, shift)):
            self._fields[name].append(item)
        self._op.append(op_id)
        self._bits.append(bits)
        self._entries[key] = len(self._op) - 1
        return len(self._op) - 1

    def entries(self, params: PolicyParams) -> np.ndarray:
        """int32[N, K]: every sample's entry per slot (0 where skipped)."""
        op, bits = params.op, np.ascontiguousarray(params.value).view(np.uint64)
        index = op.astype(np.int32)
        index += 1
        index *= _BINS
        index += params.bin
        index += 1
        index <<= 1
        index += params.sign > 0
        entry = self.dense[index]
        if (self.op[entry] == op).all() and (self.bits[entry] == bits).all():
            return entry
        with self._lock:  # new (op, value) pairs: add them, point the dense index at them
            grown = False
            miss = np.flatnonzero(((self.op[entry] != op) | (self.bits[entry] != bits)).reshape(-1))
            flat_op, flat_value, flat_bits = op.reshape(-1), params.value.reshape(-1), bits.reshape(-1)
            flat_entry = entry.reshape(-1).copy()
            for i in miss:
                size = len(self._op)
                flat_entry[i] = self._add(int(flat_op[i]), float(flat_value[i]), int(flat_bits[i]))
                grown = grown or len(self._op) > size
            if grown:
                self._freeze()
            valid = (index >= 0).reshape(-1)[miss] & (index < len(self.dense)).reshape(-1)[miss]
            self.dense[index.reshape(-1)[miss[valid]]] = flat_entry[miss[valid]]
            return flat_entry.reshape(entry.shape)


_TABLES: dict[tuple[int, int], OpTable] = {}
_TABLES_LOCK = threading.Lock()


def op_table(height: int, width: int) -> OpTable:
    """The :class:`OpTable` of H×W images (one per size, kept)."""
    with _TABLES_LOCK:
        if (height, width) not in _TABLES:
            _TABLES[(height, width)] = OpTable(height, width)
        return _TABLES[(height, width)]


@functools.lru_cache(maxsize=64)
def _layout(n: int, k: int, table_nbytes: int):
    """(slot layouts, batch layout, table offset, nbytes) of a batch of N samples, K slots."""
    shapes = {
        "code": (np.int32, (n,)),
        "box": (np.int32, (n, 4)),
        "partner": (np.int32, (n,)),
        "lut_samples": (np.int32, (n,)),
        "header": (np.int64, (HEADER_SIZE,)),
    }
    offset, slots = 0, []
    for _ in range(k):
        entry = {}
        for name, (dtype, shape) in shapes.items():
            entry[name] = (offset, np.dtype(dtype), shape)
            offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // _ALIGN) * _ALIGN
        slots.append(entry)
    batch = {}
    for name in ("in_rows", "identity"):
        batch[name] = (offset, np.dtype(np.int32), (n,))
        offset += -(-n * 4 // _ALIGN) * _ALIGN
    return tuple(slots), batch, offset, offset + table_nbytes


def pack_kernels(
    params: PolicyParams, height: int, width: int, allocate=None, in_rows: np.ndarray | None = None
) -> Packed:
    """Pack every op slot of ``params`` for H×W images for the kernels (see the module docstring).

    Args: as :func:`.pack.pack` (``in_rows``: int[N], the stage input's row of sample n).

    Returns:
        the :class:`~.pack.Packed` batch; ``sizes[k]`` holds slot k's ``stats`` and ``luts``
        (how many of ``lut_samples`` need histograms, and how many build a table), and
        ``batch_layout`` the table's fields beside ``in_rows`` and ``identity``.
    """
    n, k = params.n, params.k
    table = op_table(height, width)
    entry = table.entries(params)
    slots, batch, table_offset, nbytes = _layout(n, k, table.blob.nbytes)
    buffer = (allocate or (lambda size: np.empty(size, np.uint8)))(max(nbytes, _ALIGN))
    identity = _identity(n)
    rows = identity if in_rows is None else np.asarray(in_rows, np.int32)
    if rows.shape != (n,):
        raise ValueError(f"in_rows must have shape ({n},), got {rows.shape}")
    words = buffer[:table_offset].view(np.int32)
    words[batch["in_rows"][0] // 4 : batch["in_rows"][0] // 4 + n] = rows
    words[batch["identity"][0] // 4 : batch["identity"][0] // 4 + n] = identity
    buffer[table_offset:nbytes] = table.blob
    table_at = {name: table_offset + offset for name, (offset, _, _) in table.layout.items()}
    partner = params.partner
    codes = entry.T.copy()  # [K, N]: each slot's entries contiguous
    flags = table.flags[codes]  # [K, N]: bit 0 statistics, bit 1 table without, bit 2 Cutout
    active = codes.any(axis=1).tolist()
    first = active.index(True) if any(active) else 0  # the first slot run reads the stage input
    sizes = []
    for s, slot in enumerate(slots):
        code, flag = codes[s], flags[s]
        at = slot["code"][0] // 4
        words[at : at + n] = code
        at = slot["partner"][0] // 4
        words[at : at + n] = partner[:, s]
        box = words[slot["box"][0] // 4 : slot["box"][0] // 4 + 4 * n].reshape(n, 4)
        cut = (flag & 4).nonzero()[0]
        if len(cut):
            box[...] = 0
            box[cut] = special.cutout_boxes(params.value[cut, s], params.center[cut, s], height, width)
        stats, luts = (flag & 1).nonzero()[0], (flag & 2).nonzero()[0]
        at = slot["lut_samples"][0] // 4
        words[at : at + len(stats)] = stats
        words[at + len(stats) : at + len(stats) + len(luts)] = luts
        offsets = [slot[name][0] for name in SLOT_NAMES[:4]] + [table_at[name] for name in TABLE_NAMES]
        offsets += [batch["in_rows" if s <= first else "identity"][0], batch["in_rows"][0]]
        header = buffer[slot["header"][0] : slot["header"][0] + 8 * HEADER_SIZE].view(np.int64)
        header[: len(offsets)] = offsets
        header[len(offsets) :] = 0
        sizes.append({"stats": len(stats), "luts": len(stats) + len(luts)})
    batch_layout = dict(batch) | {
        name: (table_offset + offset, dtype, shape) for name, (offset, dtype, shape) in table.layout.items()
    }
    return Packed(buffer, slots, batch_layout, tuple(active), n, height, width, tuple(sizes))


@functools.lru_cache(maxsize=8)
def _identity(n: int) -> np.ndarray:
    identity = np.arange(n, dtype=np.int32)
    identity.flags.writeable = False
    return identity


KERNEL_SLOTS = SlotFields(SLOT_NAMES, None, rows=True, pack=pack_kernels)
"""The kernels' slot fields: packed by :func:`pack_kernels` (the batch carries the row tables
and the op table)."""

__all__ = ["HEADER", "KERNEL_SLOTS", "SLOT_NAMES", "TABLE_NAMES", "OpTable", "op_table", "pack_kernels"]
