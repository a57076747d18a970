"""The compiled sampler of sub-policy tables (``kernels/sample.cpp``), and when it is used.

:func:`sample_tables` is :func:`fastpolicy.sampling.sample_policies` for the common batch —
M samplers with :class:`~fastpolicy.sampling.SubPolicyTables` of one shape and one space (the
M policies of Adversarial AutoAugment, AutoAugment's tables) — in one ctypes call instead of
about 40 small NumPy calls. It draws from the caller's ``numpy.random.Generator`` through the
Generator's own ``bitgen_t`` with NumPy's algorithms, in the NumPy code's order, so the
parameters, and the Generator's state after them, are the NumPy path's: the loader's seeding by
``(seed, shard, epoch, step)``, resumed runs and the golden run are unchanged. Built with
``$CXX`` at first use and cached like the kernels' host builds; without a compiler (or with
``FASTPOLICY_NUMPY_SAMPLER=1``) the NumPy code runs, the same draws.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from .backends.kernel_build import HostLibrary
from .batch_seed import BatchSeed, generator_of
from .params import PolicyParams
from .registry import on_change

_SOURCE = "sample.cpp"
_OPTIONS = ("-std=c++17", "-O2", "-fPIC", "-shared", "-ffp-contract=off")
OFF = "FASTPOLICY_NUMPY_SAMPLER"
"""Environment variable: ``1`` keeps the NumPy sampler (the same draws, slower)."""


def _declare(library) -> None:
    library.fp_sample_tables_packed.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    library.fp_sample_tables_seeded.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_void_p]
    for function in (library.fp_sample_tables_packed, library.fp_sample_tables_seeded):
        function.restype = ctypes.c_int


_HELPER = HostLibrary(
    _SOURCE,
    _OPTIONS,
    "sample",
    _declare,
    "the compiled sampler",
    "sampling with NumPy instead (the same draws, slower)",
)


def _library():
    """The built sampler library (ctypes CDLL), or None (no compiler, a failed build: one
    ``RuntimeWarning`` per process)."""
    return _HELPER.get()


def _function():
    """``fp_sample_tables_packed`` from the built library, or None (see :func:`_library`)."""
    library = _library()
    return None if library is None else library.fp_sample_tables_packed


_GENERATION = [0]
"""Bumped whenever an op is registered or removed: draws built before (:class:`ReusedDraw`)
belong to an earlier registry."""


@on_change
def _forget() -> None:
    _GENERATION[0] += 1
    _CALLS.clear()
    _INPUTS.clear()


def generation() -> int:
    """The registry generation the compiled sampler's kept inputs belong to."""
    return _GENERATION[0]


def available() -> bool:
    """Whether :func:`sample_tables` runs compiled here (else callers take the NumPy path)."""
    return os.environ.get(OFF, "") != "1" and _function() is not None


_OUTPUTS: tuple[tuple[str, type, int], ...] = (
    ("op", np.int16, 1),
    ("bin", np.int8, 1),
    ("sign", np.int8, 1),
    ("value", np.float64, 1),
    ("center", np.float64, 2),
    ("partner", np.int32, 1),
    ("chosen", np.int64, 0),
)
"""The compiled sampler's outputs: name, dtype, and per-slot width (0: one per row)."""

_INPUTS: dict[tuple, tuple] = {}
"""Stacked tables and space tables by the identity of their sources → (sources, arrays, pointers):
a loader samples the same policies batch after batch (sources are kept, so ids stay unique)."""


def _inputs(tables: tuple, space_tables: tuple) -> tuple:
    """(the arrays, then the shape (G, S, K, ops, bins) and pointers of the stacked sub-policy
    tables (op, bin, prob [G, S, K]) and of the space's tables (values, signed, has_magnitude)),
    built once per set of sources. Whoever keeps a pointer keeps the arrays."""
    key = tuple(id(t) for t in tables) + tuple(id(a) for a in space_tables)
    found = _INPUTS.get(key)
    if found is None:
        if len(_INPUTS) >= 32:
            _INPUTS.clear()
        op, bins, prob = (np.stack(parts) for parts in zip(*((t.op, t.bin, t.prob) for t in tables)))
        values, signed, has_magnitude = space_tables
        arrays: list[np.ndarray] = [
            np.ascontiguousarray(op, np.int64),
            np.ascontiguousarray(bins, np.int64),
            np.ascontiguousarray(prob, np.float64),
            np.ascontiguousarray(values, np.float64),
            np.ascontiguousarray(signed, np.uint8),
            np.ascontiguousarray(has_magnitude, np.uint8),
        ]
        shape = (*arrays[0].shape, *values.shape[:2])
        found = _INPUTS[key] = ((tables, space_tables), arrays, shape, tuple(a.ctypes.data for a in arrays))
    return found[1], found[2] + found[3]


_CALLS: dict[tuple, tuple] = {}
"""(inputs' key, n, k) → the call's int64 argument array (its output pointers rewritten per
call), the output buffer's size, each output's (name, dtype, offset, size, shape), the policy
column: a loader draws batches of one shape from the same policies."""

_CAPSULE = ctypes.pythonapi.PyCapsule_GetPointer
_CAPSULE.restype, _CAPSULE.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]


def _call(tables: tuple, space_tables: tuple, n: int, k: int) -> tuple:
    key = (tuple(id(t) for t in tables), tuple(id(a) for a in space_tables), n, k)
    call = _CALLS.get(key)
    if call is None:
        arrays, (g, s, table_k, ops, bins, *inputs) = _inputs(tables, space_tables)
        rows, offset, parts = g * n, 0, []
        for name, dtype, width in _OUTPUTS:
            shape = (rows, k, 2) if width == 2 else (rows, k) if width else (rows,)
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            parts.append((name, np.dtype(dtype), offset, size, shape))
            offset += -(-size // 8) * 8
        arguments = np.array([g, s, table_k, n, k, *inputs[:3], ops, bins, *inputs[3:], *[0] * len(parts)], np.int64)
        offsets = np.array([part[2] for part in parts], np.int64)
        policy = np.repeat(np.arange(g, dtype=np.int32), n)
        policy.flags.writeable = False
        if len(_CALLS) >= 64:
            _CALLS.clear()
        # the sources and the arrays the pointers point into stay alive with the call
        call = _CALLS[key] = (arguments, offsets, offset, tuple(parts[:-1]), policy, (tables, space_tables, arrays))
    return call


def sample_tables(
    tables: tuple, space_tables: tuple, n: int, k: int, rng: np.random.Generator | BatchSeed, version: int
):
    """M = G samplers' sub-policy ``tables`` (:class:`~fastpolicy.sampling.SubPolicyTables` of
    one shape) sampled for ``n`` images each (rows ``m·n + i``, ``policy`` m), ``k`` slots, from
    ``rng``: what the NumPy path gives, or None where the compiled sampler is unavailable (the
    caller then runs the NumPy path). A :class:`~fastpolicy.batch_seed.BatchSeed` nothing was
    drawn from yet is drawn from without making its generator (the state is left in it); after
    that, draws go through its generator, which continues from that state.

    Args:
        space_tables: :func:`~fastpolicy.sampling.value_tables` of their space: values
            float64[ops, bins, 2], signed and has_magnitude bool[ops].
    """
    if not available():
        return None
    arguments, offsets, nbytes, parts, policy, _ = _call(tables, space_tables, n, k)
    buffer = np.empty(nbytes, np.uint8)
    arguments = arguments.copy()  # another thread may sample the same shape at the same time
    np.add(offsets, buffer.ctypes.data, out=arguments[-len(offsets) :])
    if isinstance(rng, BatchSeed) and rng.fresh:
        state = np.empty(6, np.uint64)
        failed = _library().fp_sample_tables_seeded(
            rng.words.ctypes.data, len(rng.words), state.ctypes.data, arguments.ctypes.data
        )
        high, low, inc_high, inc_low, has_uint32, uinteger = (int(v) for v in state)
        rng.advance(high << 64 | low, inc_high << 64 | inc_low, has_uint32, uinteger)
    else:
        bitgen = generator_of(rng).bit_generator
        with bitgen.lock:  # numpy's own draws take it too
            failed = _function()(_CAPSULE(bitgen.capsule, b"BitGenerator"), arguments.ctypes.data)
    if failed:
        raise ValueError("a sub-policy table names an op or a bin outside its space's tables")
    out = {name: buffer[at : at + size].view(dtype).reshape(shape) for name, dtype, at, size, shape in parts}
    return PolicyParams.trusted(**out, policy=policy.copy(), version=version)  # each batch its own arrays


class ReusedDraw:
    """:func:`sample_tables` for one set of tables, ``n`` and ``k``, writing into a buffer of its
    own that the next call overwrites: for a caller that copies the draws out at once
    (:class:`~fastpolicy.transforms.PolicyAugment`'s ops), without allocating per call. One per
    thread (the buffer is not shared).

    Calling it gives ``(op, value, center, partner)`` as lists ([rows][k], [rows][k][2]), or
    None where the compiled sampler is unavailable."""

    def __init__(self, tables: tuple, space_tables: tuple, n: int, k: int):
        arguments, offsets, nbytes, parts, _, self._sources = _call(tables, space_tables, n, k)
        self._buffer = np.empty(nbytes, np.uint8)
        self._arguments = arguments.copy()
        np.add(offsets, self._buffer.ctypes.data, out=self._arguments[-len(offsets) :])
        self._address = self._arguments.ctypes.data
        views = {
            name: self._buffer[at : at + size].view(dtype).reshape(shape) for name, dtype, at, size, shape in parts
        }
        self._outputs = (views["op"], views["value"], views["center"], views["partner"])

    def __call__(self, rng: np.random.Generator):
        if not available():
            return None
        bitgen = rng.bit_generator
        with bitgen.lock:
            failed = _function()(_CAPSULE(bitgen.capsule, b"BitGenerator"), self._address)
        if failed:
            raise ValueError("a sub-policy table names an op or a bin outside its space's tables")
        return tuple(array.tolist() for array in self._outputs)


__all__ = ["OFF", "ReusedDraw", "available", "sample_tables"]
