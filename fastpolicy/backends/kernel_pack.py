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

Two packers write the same bytes (``tests/test_pack_bytes.py``): the compiled one
(``kernels/pack.cpp``, :func:`native_packer`: two ctypes calls per batch, about 0.05 ms for
2 048 images) where a C++ compiler is found, else a handful of NumPy calls per slot (0.2–0.6
ms); ``benchmarks/pack_time.py`` times both. New (op, value) pairs are added by Python either
way.

The batch carries the table (one contiguous copy) and a ``header`` per slot: the byte
offsets of every field the kernels read, the one argument they take besides the images
and the output (``FpArgs`` in ``kernels/apply.cu``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Callable

import numpy as np

from ..params import PolicyParams
from ..reference import geometry, special
from ..registry import OP_NAMES, OPS, on_change
from .kernel_ops import APPLY_FUNCTIONS, LUT_BUILDERS, SHIFT, TABLE, WIDE_WARP, kernel_op, per_sample
from .pack import Packed, SlotFields

_SPECS = [OPS[name] for name in OP_NAMES]
_TABLE_KIND = LUT_BUILDERS.index(TABLE)
_ALIGN = 16
_BINS = 258  # bin + 1 in 0..256 (int8 bins -1..127, with room); index = ((op + 1) * _BINS + bin + 1) * 2 + (sign > 0)

if any(spec.stats is not None and spec.kind != "lut" for spec in _SPECS):  # the kernels' list order relies on it
    raise RuntimeError("an op with statistics that is not a table op: kernels/luts.cu takes statistics for tables only")

SLOT_NAMES = ("code", "box", "partner", "lut_samples", "header")
"""Fields of a kernel slot: entry int32[N] (0 skips), Cutout box int32[N, 4] (``y0, x0, y1,
x1``), partner int32[N], samples with a table int32[N] (those with statistics first; the
slot's ``sizes`` say how many of each), and the kernels' header int64[16]."""

TABLE_NAMES = (
    "e_code",
    "e_lut",
    "e_ivalue",
    "e_value",
    "e_fixed",
    "e_shift",
    "e_stats",
    "shift_rows",
    "shift_cols",
    "host_luts",
)
"""Fields of the op table (per entry E: apply code, builder kind, builder's integer
parameter, float32 value, int64[E, 6] fixed-point matrix, translation table index, 1 where
the table is built from statistics; the translation tables int32[T, H] and int32[T, W], -1 =
fill; the host-built tables of registered table ops, uint8[U, 256], row 0 unused, the
entry's integer parameter its row)."""

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
    """Per op id: apply code and builder kind (None for an op without a kernel form, refused
    by name when a batch uses it); the codes of translations and of wide warps."""
    ops = [spec.backends.get("kernels") for spec in _SPECS]
    code = [None if k is None else APPLY_FUNCTIONS.index(k.apply) for k in ops]
    lut_kind = [None if k is None else LUT_BUILDERS.index(k.lut) if k.lut else -1 for k in ops]
    return code, lut_kind, APPLY_FUNCTIONS.index(SHIFT), APPLY_FUNCTIONS.index(WIDE_WARP)


@functools.lru_cache(maxsize=1)
def filter_passes() -> dict[int, Callable[[np.ndarray], np.ndarray]]:
    """Op id → its box-pass weights function (:attr:`~.kernel_ops.KernelOp.passes`), for the ops
    that have one: the one table of them (the stage runs their passes; their entries here do not
    depend on their value)."""
    found = {}
    for op_id, spec in enumerate(_SPECS):
        passes = getattr(spec.backends.get("kernels"), "passes", None)
        if passes is not None:
            found[op_id] = passes
    return found


@functools.lru_cache(maxsize=1)
def _valueless() -> np.ndarray | None:
    """bool [ops + 1] (index op id + 1): the ops of :func:`filter_passes`, or None if there are none."""
    passes = filter_passes()
    return np.array([False] + [op_id in passes for op_id in range(len(_SPECS))]) if passes else None


def _keyed(params: PolicyParams) -> PolicyParams:
    """``params`` as the op table keys them: the value of a valueless op's slots set to 0, so a
    deviation drawn per image (timm's ``3a``) adds no entry per image."""
    valueless = _valueless()
    if valueless is None:
        return params
    hit = valueless[params.op + 1]
    return dataclasses.replace(params, value=np.where(hit, 0.0, params.value)) if hit.any() else params


@on_change
def _read_registry() -> None:
    """An op was registered or removed: per-op tables and every size's entries again."""
    _SPECS[:] = [OPS[name] for name in OP_NAMES]
    _kernel_tables.cache_clear()
    filter_passes.cache_clear()
    _valueless.cache_clear()
    with _TABLES_LOCK:
        _TABLES.clear()


def narrow_warp(fixed: np.ndarray, height: int, width: int) -> bool:
    """Whether ``apply_warp`` may compute PIL's fixed-point source coordinates of an H×W image in
    32 bits: ``a2 + y a1 + x a0`` and ``a5 + y a4 + x a3`` lie in int32 at the four corners
    (x in {0, W − 1}, y in {0, H − 1}), hence, being affine, at every pixel. The kernel sums
    modulo 2³² (a product may wrap, the sum does not), so its integers are the int64 ones.
    ``fixed``: int64[6] (``geometry.fixed_point``). Within PIL's fixed-point domain (corners
    within ±32 768 px, which the reference enforces) this fails only where a corner maps
    within about (H + W) / 131 072 px of ±32 768 (the coefficients' rounding); such an entry
    gets ``apply_warp_wide`` (int64)."""
    a = [int(v) for v in fixed]
    corners = [(y, x) for y in (0, height - 1) for x in (0, width - 1)]
    return all(-(2**31) <= a[k] + y * a[k - 1] + x * a[k - 2] < 2**31 for k in (2, 5) for y, x in corners)


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
        dense: int32, the entry of each (op, bin, sign) last seen (see :meth:`entries`).
        state: the table as the packers read it (:class:`_TableState`: its entries' ops, value
            bits, flags, and the packed fields), replaced whole when the table grows, so a
            batch packs from one consistent version.
    """

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, int], int] = {}
        self._rows: list[np.ndarray] = [np.full(height, -1, np.int32)]
        self._cols: list[np.ndarray] = [np.full(width, -1, np.int32)]
        self._host_luts: list[np.ndarray] = [np.arange(256, dtype=np.uint8)]
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
        stats = np.array([False] + [_SPECS[o].stats is not None for o in self._op[1:]])  # per entry
        arrays: dict[str, np.ndarray] = {
            "e_code": np.array(f["e_code"], np.int32),
            "e_lut": np.array(f["e_lut"], np.int32),
            "e_ivalue": np.array(f["e_ivalue"], np.int32),
            "e_value": np.array(f["e_value"], np.float32),
            "e_fixed": np.stack(f["e_fixed"]).astype(np.int64),
            "e_shift": np.array(f["e_shift"], np.int32),
            "e_stats": stats.astype(np.int32),
            "shift_rows": np.stack(self._rows),
            "shift_cols": np.stack(self._cols),
            "host_luts": np.stack(self._host_luts),
        }
        layout: dict[str, tuple[int, np.dtype, tuple[int, ...]]] = {}
        offset = 0
        for name, array in arrays.items():
            layout[name] = (offset, array.dtype, array.shape)
            offset += -(-array.nbytes // _ALIGN) * _ALIGN
        blob = np.zeros(offset, np.uint8)
        for name, array in arrays.items():
            blob[layout[name][0] : layout[name][0] + array.nbytes] = array.view(np.uint8).reshape(-1)
        lut = arrays["e_lut"] >= 0
        cutout = np.array([False] + [_SPECS[o].needs == "center" for o in self._op[1:]])
        flags = (stats * 1 + (lut & ~stats) * 2 + cutout * 4).astype(np.uint8)
        op, bits = np.array(self._op, np.int16), np.array(self._bits, np.uint64)
        self.state = _TableState(self.dense, op, bits, flags, blob, layout)

    def _add(self, op_id: int, value: float, bits: int) -> int:
        if op_id < 0:
            return 0
        key = (op_id, bits)
        if key in self._entries:
            return self._entries[key]
        codes, kinds, shift_code, wide_code = _kernel_tables()
        code, kind = codes[op_id], kinds[op_id]
        if code is None:
            kernel_op(OP_NAMES[op_id])  # raises, naming the op
        fixed, shift = np.zeros(6, np.int64), 0
        if _SPECS[op_id].kind == "affine":
            warp = _warp(op_id, value, self.height, self.width)
            if isinstance(warp, tuple):
                code, shift = shift_code, len(self._rows)
                self._rows.append(warp[0].astype(np.int32))
                self._cols.append(warp[1].astype(np.int32))
            else:
                fixed = warp
                code = code if narrow_warp(fixed, self.height, self.width) else wide_code
        if kind == _TABLE_KIND:  # a registered table op: its table, built here, in the entry's row
            ivalue = len(self._host_luts)
            table = kernel_op(OP_NAMES[op_id]).table
            assert table is not None  # every lut_table op carries its table function
            self._host_luts.append(np.asarray(table(value)).astype(np.uint8))
        else:
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
        state = self.state  # one version: dense only points at entries it already holds
        if (state.op[entry] == op).all() and (state.bits[entry] == bits).all():
            return entry
        with self._lock:  # new (op, value) pairs: add them, point the dense index at them
            grown = False
            miss = np.flatnonzero(((state.op[entry] != op) | (state.bits[entry] != bits)).reshape(-1))
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


class _Plan:
    """Where everything of a batch of N samples and K slots lies for one :class:`_TableState`.

    Attributes:
        slots: per slot, field (:data:`SLOT_NAMES`) → (byte offset, dtype, shape).
        batch: ``in_rows`` and ``identity`` → (byte offset, dtype, shape).
        batch_layout: ``batch`` and the table's fields (:data:`TABLE_NAMES`) at their offsets.
        table_offset, nbytes: where the table's copy starts; the buffer's size.
        headers: int64[K, 2, 16], each slot's header (:data:`HEADER`) when it reads the stage
            input (variant 0: up to the first active slot) or the previous slot's output (1).
        words: int64, what ``fp_pack_fill`` reads (``kernels/pack.cpp``): per slot the offsets of
            its fields, then those of ``in_rows``, ``identity`` and the table, then ``headers``.
    """

    __slots__ = ("batch", "batch_layout", "headers", "nbytes", "slots", "table_offset", "words", "words_at")

    def __init__(self, n: int, k: int, state: _TableState):
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
        table_at = {name: offset + at for name, (at, _, _) in state.layout.items()}
        headers = np.zeros((k, 2, HEADER_SIZE), np.int64)
        for s, slot in enumerate(slots):
            for variant, source in enumerate(("in_rows", "identity")):
                offsets = [slot[name][0] for name in SLOT_NAMES[:4]] + [table_at[name] for name in TABLE_NAMES]
                offsets += [batch[source][0], batch["in_rows"][0]]
                headers[s, variant, : len(offsets)] = offsets
        self.slots, self.batch, self.table_offset = tuple(slots), batch, offset
        self.nbytes = offset + state.blob.nbytes
        self.batch_layout = dict(batch) | {
            name: (offset + at, dtype, shape) for name, (at, dtype, shape) in state.layout.items()
        }
        self.headers = headers
        fields = [slot[name][0] for slot in slots for name in SLOT_NAMES]
        places = np.array([*fields, batch["in_rows"][0], batch["identity"][0], offset], np.int64)
        self.words = np.concatenate([places, headers.reshape(-1)])
        self.words_at = self.words.ctypes.data


class _TableState:
    """One version of an :class:`OpTable` as the packers read it (shared arrays, never modified
    but for ``dense``, which only ever points at entries of this or a later version).

    Attributes:
        dense: the table's :attr:`OpTable.dense`.
        op, bits: int16[E] and uint64[E], each entry's op id and float64 value bits.
        flags: uint8[E], per entry: 1 its op needs statistics (and a table), 2 a table without
            statistics, 4 a Cutout box.
        blob: uint8, the table's fields (:data:`TABLE_NAMES`) packed, 16-byte aligned.
        layout: field → (offset in ``blob``, dtype, shape).
        addresses: ``dense``, ``op``, ``bits``, ``flags``, ``blob``'s data pointers (the
            compiled packer's arguments).
    """

    __slots__ = ("_plans", "addresses", "bits", "blob", "dense", "flags", "layout", "op")

    def __init__(self, dense, op, bits, flags, blob, layout) -> None:
        self.dense, self.op, self.bits, self.flags, self.blob, self.layout = dense, op, bits, flags, blob, layout
        self.addresses = tuple(a.ctypes.data for a in (dense, op, bits, flags, blob))
        self._plans: dict[tuple[int, int], _Plan] = {}

    def plan(self, n: int, k: int) -> _Plan:
        """The :class:`_Plan` of a batch of N samples, K slots (kept: a run packs few shapes)."""
        plan = self._plans.get((n, k))
        if plan is None:
            if len(self._plans) >= 64:
                self._plans.clear()
            plan = self._plans[(n, k)] = _Plan(n, k, self)
        return plan


_PACKER_SOURCE = "pack.cpp"
_PACKER_OPTIONS = ("-std=c++20", "-O2", "-fPIC", "-shared", "-ffp-contract=off")


class NativePacker:
    """The compiled packer (``kernels/pack.cpp``, built with ``$CXX`` at first use and cached
    beside the kernels' host builds); :func:`pack_kernels` uses it where it loads.

    Attributes:
        library: the shared library's path.
    """

    def __init__(self, library):
        self.library = library
        lib = ctypes.CDLL(str(library))
        i64, ptr = ctypes.c_longlong, ctypes.c_void_p
        self.entries = lib.fp_pack_entries
        self.entries.argtypes = [i64, i64, ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, i64, ptr]
        self.entries.restype = i64
        self.fill = lib.fp_pack_fill
        self.fill.argtypes = [i64, i64, i64, i64, *[ptr] * 7, i64, ptr, ptr, ptr]
        self.fill.restype = ctypes.c_int


_NATIVE: list[NativePacker | None] = []
_NATIVE_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child (a ``fork`` DataLoader worker) starts with fresh locks and no op tables:
    a lock another thread held at the fork is never released in the child, and a table it was
    growing may be half grown there; the child rebuilds its tables on first use."""
    global _TABLES_LOCK, _NATIVE_LOCK
    _TABLES_LOCK, _NATIVE_LOCK = threading.Lock(), threading.Lock()
    _TABLES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def native_packer() -> NativePacker | None:
    """The :class:`NativePacker`, compiled at first call; None where it cannot be built (no
    compiler, or it fails: one ``RuntimeWarning`` per process, and :func:`pack_kernels` packs
    with NumPy, the same bytes, slower)."""
    if _NATIVE:
        return _NATIVE[0]
    with _NATIVE_LOCK:
        if not _NATIVE:
            _NATIVE.append(_build_packer())
    return _NATIVE[0]


def _build_packer() -> NativePacker | None:
    from .kernel_build import KernelCompileError, build_host_library

    try:
        return NativePacker(build_host_library(_PACKER_SOURCE, _PACKER_OPTIONS, "pack"))
    except (KernelCompileError, OSError) as error:
        warnings.warn(
            f"the kernels' compiled packer is unavailable ({error}); packing with NumPy instead "
            "(the same bytes, about 0.2-0.6 ms per batch of 2048 rather than under 0.1 ms)",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


def _address(array: np.ndarray) -> int:
    """The data pointer of C-contiguous ``array`` (a writable one's the cheap way); ValueError
    for one that is not C-contiguous."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))  # type: ignore[arg-type]  # an ndarray is a buffer
    except (TypeError, ValueError):  # read-only, empty, or not contiguous
        if not array.flags.c_contiguous:
            raise ValueError(f"the compiled packer reads C-contiguous arrays, got strides {array.strides}") from None
        return array.ctypes.data


def pack_kernels(
    params: PolicyParams,
    height: int,
    width: int,
    allocate=None,
    in_rows: np.ndarray | None = None,
    *,
    native: bool | None = None,
) -> Packed:
    """Pack every op slot of ``params`` for H×W images for the kernels (see the module docstring).

    Args: as :func:`.pack.pack` (``in_rows``: int[N], the stage input's row of sample n), and
        ``native``: pack with the compiled packer (:func:`native_packer`; True: raise
        RuntimeError where it cannot be built), with NumPy (False), or the first where it
        builds (None). Both write the same bytes; neither writes the alignment padding nor
        ``lut_samples`` past the slot's ``luts``.

    Returns:
        the :class:`~.pack.Packed` batch; ``sizes[k]`` holds slot k's ``stats`` and ``luts``
        (how many of ``lut_samples`` need histograms, and how many build a table), and
        ``batch_layout`` the table's fields beside ``in_rows`` and ``identity``.
    """
    n, k = params.n, params.k
    params = _keyed(params)
    allocate = allocate or (lambda size: np.empty(size, np.uint8))
    table = op_table(height, width)
    rows = None if in_rows is None else np.ascontiguousarray(in_rows, np.int32)
    if rows is not None and rows.shape != (n,):
        raise ValueError(f"in_rows must have shape ({n},), got {rows.shape}")
    packer = native_packer() if native is not False else None
    if native and packer is None:
        raise RuntimeError("the kernels' compiled packer cannot be built here (see the warning); pass native=None")
    state = table.state
    if packer is not None:
        scratch = np.empty(k * n + 3 * k, np.int32)  # codes [K, N], then fp_pack_fill's counts
        at = _address(scratch)
        value_at = _address(params.value)
        dense, op, bits = state.addresses[:3]
        misses = packer.entries(
            n,
            k,
            _address(params.op),
            _address(params.bin),
            _address(params.sign),
            value_at,
            dense,
            len(state.dense),
            op,
            bits,
            len(state.op),
            at,
        )
        if misses:  # new (op, value) pairs: the table grows (Python), then the batch packs as usual
            entry = table.entries(params)
            state = table.state
            scratch[: k * n] = entry.T.reshape(-1)
        plan = state.plan(n, k)
        buffer = allocate(max(plan.nbytes, _ALIGN))
        failed = packer.fill(
            n,
            k,
            height,
            width,
            at,
            state.addresses[3],
            value_at,
            _address(params.center),
            _address(params.partner),
            None if rows is None else _address(rows),
            state.addresses[4],
            state.blob.nbytes,
            plan.words_at,
            _address(buffer),
            at + 4 * k * n,
        )
        if not failed:
            counts = scratch[k * n :].tolist()
            sizes = tuple({"stats": counts[3 * s], "luts": counts[3 * s + 1]} for s in range(k))
            active = tuple(bool(counts[3 * s + 2]) for s in range(k))
            return Packed(buffer, plan.slots, plan.batch_layout, active, n, height, width, sizes)
        # a Cutout box out of the plain range (kernels/pack.cpp): NumPy packs it, or raises
        codes = scratch[: k * n].reshape(k, n)
    else:
        codes = table.entries(params).T.copy()
        state = table.state
        plan = state.plan(n, k)
        buffer = allocate(max(plan.nbytes, _ALIGN))
    active, sizes = _fill_numpy(params, height, width, codes, state, plan, buffer, rows)
    return Packed(buffer, plan.slots, plan.batch_layout, active, n, height, width, sizes)


def _fill_numpy(params: PolicyParams, height: int, width: int, codes, state, plan, buffer, rows):
    """The NumPy packer: what ``fp_pack_fill`` writes, written with NumPy (codes: int32[K, N],
    each slot's entries); returns (active, sizes) as :class:`~.pack.Packed` holds them."""
    n = params.n
    batch = plan.batch
    words = buffer[: plan.table_offset].view(np.int32)
    identity = _identity(n)
    words[batch["in_rows"][0] // 4 : batch["in_rows"][0] // 4 + n] = identity if rows is None else rows
    words[batch["identity"][0] // 4 : batch["identity"][0] // 4 + n] = identity
    buffer[plan.table_offset : plan.nbytes] = state.blob
    partner = params.partner
    flags = state.flags[codes]  # [K, N]: bit 0 statistics, bit 1 table without, bit 2 Cutout
    active = codes.any(axis=1).tolist()
    first = active.index(True) if any(active) else 0  # the first slot run reads the stage input
    sizes = []
    for s, slot in enumerate(plan.slots):
        code, flag = codes[s], flags[s]
        at = slot["code"][0] // 4
        words[at : at + n] = code
        at = slot["partner"][0] // 4
        words[at : at + n] = partner[:, s]
        box = words[slot["box"][0] // 4 : slot["box"][0] // 4 + 4 * n].reshape(n, 4)
        box[...] = 0
        cut = (flag & 4).nonzero()[0]
        if len(cut):
            box[cut] = special.cutout_boxes(params.value[cut, s], params.center[cut, s], height, width)
        stats, luts = (flag & 1).nonzero()[0], (flag & 2).nonzero()[0]
        at = slot["lut_samples"][0] // 4
        words[at : at + len(stats)] = stats
        words[at + len(stats) : at + len(stats) + len(luts)] = luts
        header = buffer[slot["header"][0] : slot["header"][0] + 8 * HEADER_SIZE].view(np.int64)
        header[:] = plan.headers[s, 0 if s <= first else 1]
        sizes.append({"stats": len(stats), "luts": len(stats) + len(luts)})
    return tuple(active), tuple(sizes)


@functools.lru_cache(maxsize=8)
def _identity(n: int) -> np.ndarray:
    identity = np.arange(n, dtype=np.int32)
    identity.flags.writeable = False
    return identity


KERNEL_SLOTS = SlotFields(SLOT_NAMES, None, rows=True, pack=pack_kernels)
"""The kernels' slot fields: packed by :func:`pack_kernels` (the batch carries the row tables
and the op table)."""

__all__ = [
    "HEADER",
    "KERNEL_SLOTS",
    "SLOT_NAMES",
    "TABLE_NAMES",
    "NativePacker",
    "OpTable",
    "native_packer",
    "op_table",
    "pack_kernels",
]
