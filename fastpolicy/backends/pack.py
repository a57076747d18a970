"""The one packer: every op slot of a batch, computed on the host into one buffer.

A policy stage applies slot ``k`` of all samples at once. :func:`pack` turns
:class:`~fastpolicy.params.PolicyParams` into what the ops consume for a known image
size, for every slot, laid out in **one** contiguous uint8 buffer (16-byte aligned
fields), so a GPU stage uploads a batch's arguments with one asynchronous copy from
pinned memory (:meth:`Packed.views` rebuilds the fields over the device copy), and the
CPU stages use the host buffer as it is.

What a slot holds is the backend's: each declares its :class:`SlotFields` next to its
code (:mod:`.kernel_pack` for the kernels, :mod:`.dali_stage` for DALI). Everything
geometric comes from the reference on the host — fixed-point matrices, translation tables,
float matrices (:mod:`fastpolicy.reference.geometry`) and Cutout boxes
(:func:`~fastpolicy.reference.special.cutout_boxes`, computed here once for every backend)
— so no backend can drift from it. They depend only on (op, value, image size) and values
come from magnitude bins, so the backends memoize them: a batch costs a few NumPy calls
per slot, not a Python loop over samples (the kernels' packer is compiled where a C++
compiler is found: :func:`~.kernel_pack.pack_kernels`).

**The skip code.** A skipped slot is op id :data:`~fastpolicy.params.NO_OP` (-1) in
:class:`~fastpolicy.params.PolicyParams`, and ``op + 1`` indexes every per-op table here
(the kernels' apply functions, DALI's ``select`` list), so 0 means "skip" in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..params import PolicyParams
from ..reference import special
from ..registry import OP_NAMES, OPS, on_change

_SPECS: list = []
_AFFINE = _CUTOUT = np.zeros(1, bool)
_ALIGN = 16


@on_change
def _read_registry() -> None:
    """Per-op flags (index op id + 1; 0: a skipped slot), read again when an op is registered."""
    global _AFFINE, _CUTOUT
    _SPECS[:] = [OPS[name] for name in OP_NAMES]
    _AFFINE = np.array([False] + [spec.kind == "affine" for spec in _SPECS])
    _CUTOUT = np.array([False] + [spec.needs == "center" for spec in _SPECS])


_read_registry()


@dataclass(frozen=True)
class SlotFields:
    """What one backend consumes per op slot; each backend declares its own next to its code
    (:data:`~.kernel_pack.KERNEL_SLOTS`, :data:`~.dali_stage.DALI_SLOTS`).

    Attributes:
        names: the fields of a slot, in order.
        build: ``build(op, value, box, partner, height, width) -> {name: array}`` for one
            slot of N samples: op int64[N] (-1: skipped), value float64[N], box int32[N, 4]
            (Cutout's ``y0, x0, y1, x1``; zeros elsewhere), partner int32[N].
            None where ``pack`` packs the whole batch.
        rows: whether the batch carries the row tables ``in_rows`` and ``identity``
            (int32[N]; a stage that reads the loader's copies in place).
        pack: ``pack(params, height, width, allocate=, in_rows=) -> Packed``: a backend's own
            packer of the whole batch, used by :func:`pack` instead of ``build``
            (:func:`~.kernel_pack.pack_kernels`: tables kept across batches).
    """

    names: tuple[str, ...]
    build: Callable[..., dict[str, np.ndarray]] | None
    rows: bool = False
    pack: Callable[..., Packed] | None = None


def affine_groups(op: np.ndarray, value: np.ndarray):
    """``(op id, value, sample indices)`` for each distinct geometric (op, value) of a slot:
    a backend computes its matrices and tables once per group, not per sample."""
    affine = np.flatnonzero(_AFFINE[op + 1])
    if not len(affine):
        return
    keys, inverse = np.unique(np.stack([op[affine], value[affine]], axis=1), axis=0, return_inverse=True)
    for k, (op_id, v) in enumerate(keys):
        yield int(op_id), float(v), affine[inverse.reshape(-1) == k]


@dataclass(frozen=True)
class Packed:
    """A batch's op slots in one buffer.

    Attributes:
        buffer: uint8[nbytes], every field of every slot (16-byte aligned).
        layout: per slot, field name → (byte offset, dtype, shape).
        batch_layout: the same for the batch's fields (with :attr:`SlotFields.rows`:
            ``in_rows``, int32[N], the input row of every sample, and ``identity``,
            int32[N] = 0 … N−1; else empty).
        active: per slot, whether any sample applies an op there.
        n, height, width: the batch the slots were packed for.
        sizes: per slot, counts a backend's packer reports beside the buffer (e.g. how many
            samples build a table); empty by default.
    """

    buffer: np.ndarray
    layout: tuple[dict[str, tuple[int, np.dtype, tuple[int, ...]]], ...]
    batch_layout: dict[str, tuple[int, np.dtype, tuple[int, ...]]]
    active: tuple[bool, ...]
    n: int
    height: int
    width: int
    sizes: tuple[dict[str, int], ...] = ()

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
    fields: SlotFields,
    allocate=None,
    in_rows: np.ndarray | None = None,
) -> Packed:
    """Pack every op slot of ``params`` for H×W images.

    Args:
        params: N samples' op slots.
        fields: the backend's :class:`SlotFields` (what its slots hold).
        allocate: ``allocate(nbytes) -> uint8 array`` for the buffer (e.g. a pinned torch
            tensor's NumPy view); default ``numpy.empty``.
        in_rows: int[N], the row of the stage's input that holds sample n (default: row
            n); only for fields with ``rows``.

    Returns:
        the :class:`Packed` slots; ``Packed.views()[k]`` are slot k's arrays.
    """
    if not isinstance(fields, SlotFields):
        raise TypeError(f"fields must be a backend's SlotFields, got {fields!r}")
    if in_rows is not None and not fields.rows:
        raise ValueError("in_rows needs slot fields with row tables (rows=True)")
    if fields.pack is not None:
        return fields.pack(params, height, width, allocate=allocate, in_rows=in_rows)
    assert fields.build is not None  # a SlotFields without its own packer builds slot by slot
    slots = []
    for k in range(params.k):
        op = params.op[:, k].astype(np.int64)
        value = params.value[:, k]
        box = np.zeros((params.n, 4), np.int32)
        cut = np.flatnonzero(_CUTOUT[op + 1])
        if len(cut):
            box[cut] = special.cutout_boxes(value[cut], params.center[cut, k], height, width)
        slots.append(fields.build(op, value, box, params.partner[:, k].astype(np.int32), height, width))
    batch = {}
    if fields.rows:
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
