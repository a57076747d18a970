"""The kernels' two host packers write the same bytes: the compiled one (``kernels/pack.cpp``)
and the NumPy one it falls back to (``fastpolicy/backends/kernel_pack.py``).

Every buffer starts filled with a sentinel byte, so a byte one packer writes and the other
leaves alone (alignment padding, ``lut_samples`` past a slot's tables) shows too.
"""

from __future__ import annotations

import itertools
import os
import signal
import warnings

import numpy as np
import pytest

from fastpolicy.backends import kernel_pack
from fastpolicy.backends.kernel_pack import native_packer, pack_kernels
from fastpolicy.bench.stage import cases
from fastpolicy.params import NO_OP, PolicyParams
from fastpolicy.policy import Policy
from fastpolicy.reference.special import cutout_boxes
from fastpolicy.registry import OPS
from fastpolicy.sampling import sample_policies

_SENTINEL = 0xA5
_SIZES = itertools.count(40)  # a fresh image size per use: an empty op table, so the packers add entries


def _fresh_size() -> tuple[int, int]:
    side = next(_SIZES)
    return side, side + 7


def _allocate(nbytes: int) -> np.ndarray:
    return np.full(nbytes, _SENTINEL, np.uint8)


@pytest.fixture(scope="module")
def packer():
    native = native_packer()
    if native is None:
        pytest.skip("no C++ compiler: the compiled packer cannot be built here")
    return native


def _assert_same_bytes(
    params: PolicyParams, height: int, width: int, in_rows=None, native_first: bool = True, what: str = ""
):
    order = (True, False) if native_first else (False, True)
    packed = {
        native: pack_kernels(params, height, width, allocate=_allocate, in_rows=in_rows, native=native)
        for native in order
    }
    compiled, numpy = packed[True], packed[False]
    assert compiled.buffer.nbytes == numpy.buffer.nbytes
    differ = np.flatnonzero(compiled.buffer != numpy.buffer)
    assert not len(differ), f"{what}: {len(differ)} bytes differ, the first at {differ[0]} of {compiled.buffer.nbytes}"
    assert compiled.sizes == numpy.sizes and compiled.active == numpy.active
    assert compiled.layout == numpy.layout and compiled.batch_layout == numpy.batch_layout
    return compiled


@pytest.mark.parametrize("n", [1, 8, 2048])
@pytest.mark.parametrize("native_first", [True, False], ids=["compiled-first", "numpy-first"])
def test_the_stage_cases_pack_the_same_bytes(packer, n, native_first):
    """Op families, random adversarial policies, the standard policies; the table grown by
    whichever packer runs first."""
    height, width = _fresh_size()
    for name, params in cases(max(n, 8), np.random.default_rng(n)).items():
        params = _first(params, n)
        _assert_same_bytes(params, height, width, native_first=native_first, what=name)
        _assert_same_bytes(params, height, width, in_rows=np.arange(n)[::-1].copy(), what=name)


def _first(params: PolicyParams, n: int) -> PolicyParams:
    """The first ``n`` samples of ``params`` as a batch of their own (partners among them)."""
    fields = {f: getattr(params, f)[:n] for f in PolicyParams._DTYPES}
    fields["partner"] = fields["partner"] % n
    return PolicyParams(**fields, version=params.version)


@pytest.mark.parametrize("seed", range(6))
def test_random_adversarial_policies_pack_the_same_bytes(packer, seed):
    rng = np.random.default_rng(100 + seed)
    height, width = _fresh_size()
    m = int(rng.integers(1, 9))
    n = int(rng.choice([1, 3, 8, 100, 2048])) // m * m or m
    params = sample_policies([Policy.random(rng) for _ in range(m)], n // m, rng)
    compiled = _assert_same_bytes(params, height, width)
    again = _assert_same_bytes(params, height, width)  # every entry known now: no miss
    assert np.array_equal(compiled.buffer, again.buffer)


def test_skipped_slots_pack_the_same_bytes(packer):
    height, width = _fresh_size()
    for n, k in ((1, 1), (8, 2), (2048, 3)):
        packed = _assert_same_bytes(PolicyParams.skipped(n, k), height, width)
        assert packed.active == (False,) * k
    rng = np.random.default_rng(7)
    params = sample_policies([Policy.random(rng) for _ in range(4)], 64, rng)
    op = params.op.copy()
    op[::3, 0] = NO_OP  # some samples skip the first slot, every sample the second
    op[:, 1] = NO_OP
    fields = {f: getattr(params, f) for f in PolicyParams._DTYPES} | {"op": op}
    packed = _assert_same_bytes(PolicyParams(**fields), height, width)
    assert packed.active == (True, False)
    fields["op"] = np.where(np.arange(2)[None, :] == 0, NO_OP, params.op)  # only the second slot runs
    packed = _assert_same_bytes(PolicyParams(**fields), height, width)
    assert packed.active == (False, True)


def _special(n: int, k: int, name: str, value, center, rng) -> PolicyParams:
    return PolicyParams(
        op=np.full((n, k), OPS[name].id),
        bin=np.full((n, k), -1),
        sign=np.ones((n, k)),
        value=value,
        center=center,
        partner=rng.integers(0, n, (n, k)),
        policy=np.zeros(n),
    )


@pytest.mark.parametrize("height, width", [(64, 64), (64, 96), (97, 31), (224, 224), (1, 5)])
def test_cutout_boxes_are_the_references_bit_for_bit(packer, height, width):
    """Random values and centres, ties of rint (value · min(H, W) = m + 0.5), centres at 0 and
    just below 1, negative and oversized sides."""
    rng = np.random.default_rng(height * 1000 + width)
    n, k = 4096, 2
    short = min(height, width)
    value = rng.uniform(-0.3, 1.5, (n, k))
    value[::4] = (rng.integers(-2 * short, 4 * short, (n, k))[::4] + 0.5) / short  # ties, exact where short = 2^j
    value[1::8] = rng.integers(0, 200, (n, k))[1::8] * 0.001  # the op's own range, 0 … 0.2 by 0.001
    center = rng.uniform(0, 1, (n, k, 2))
    center[::5, :, 0] = 0.0
    center[1::5, :, 1] = np.nextafter(1.0, 0.0)
    center[2::7] = rng.integers(0, [height, width], (n, k, 2))[2::7] / np.array([height, width])  # on pixel edges
    params = _special(n, k, "Cutout", value, center, rng)
    packed = _assert_same_bytes(params, height, width)
    for s, slot in enumerate(packed.views()):
        want = cutout_boxes(value[:, s], center[:, s], height, width)
        assert np.array_equal(slot["box"], want.astype(np.int32))


def test_cutout_sides_the_compiled_packer_leaves_to_numpy(packer):
    """NaN, infinite and huge sides (conversions NumPy and C++ need not agree on): the compiled
    packer hands the batch to NumPy, the bytes are NumPy's."""
    rng = np.random.default_rng(3)
    n = 16
    value = np.full((n, 1), 0.1)
    for bad in (np.nan, np.inf, -np.inf, 1e300, 2.0**40):
        value[5, 0] = bad
        params = _special(n, 1, "Cutout", value, rng.uniform(0, 1, (n, 1, 2)), rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's cast of NaN / inf
            _assert_same_bytes(params, 32, 48)


def test_sample_pairing_and_mixed_specials_pack_the_same_bytes(packer):
    rng = np.random.default_rng(11)
    n = 300
    params = _special(n, 2, "SamplePairing", rng.uniform(0, 0.4, (n, 2)), np.zeros((n, 2, 2)), rng)
    packed = _assert_same_bytes(params, 50, 70)
    for s, slot in enumerate(packed.views()):
        assert np.array_equal(slot["partner"], params.partner[:, s])


def test_the_compiled_packer_falls_back_to_numpy_without_a_compiler(monkeypatch):
    """No compiler: one RuntimeWarning, then NumPy packs (``native=True`` raises)."""
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.warns(RuntimeWarning, match="compiled packer is unavailable.*packing with NumPy"):
        assert kernel_pack._build_packer() is None
    monkeypatch.setattr(kernel_pack, "_NATIVE", [None])
    params = PolicyParams.skipped(4, 2)
    packed = pack_kernels(params, 8, 8)
    assert packed.active == (False, False)
    with pytest.raises(RuntimeError, match="compiled packer cannot be built here"):
        pack_kernels(params, 8, 8, native=True)


def test_the_packers_check_in_rows():
    params = PolicyParams.skipped(4, 1)
    for native in (None, False):
        with pytest.raises(ValueError, match=r"in_rows must have shape \(4,\)"):
            pack_kernels(params, 8, 8, in_rows=np.arange(3), native=native)
    rows = np.arange(4, dtype=np.int32)[::-1].copy()
    rows.flags.writeable = False  # a read-only table is read, not written
    packed = pack_kernels(params, 8, 8, in_rows=rows)
    assert np.array_equal(packed.batch_views()["in_rows"], rows)
    strided = np.arange(8, dtype=np.int32)[::2]
    assert np.array_equal(pack_kernels(params, 8, 8, in_rows=strided).batch_views()["in_rows"], strided)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernel_pack._address(np.zeros((4, 4), np.int32)[:, ::2])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_lock_is_held_packs_without_waiting():
    """A fork while another thread holds the table or packer lock (a DataLoader worker forked
    beside the loader's prefetch thread) must not leave the child waiting on it forever."""
    params = cases(8, np.random.default_rng(0))["adversarial_policies"]
    with kernel_pack._TABLES_LOCK, kernel_pack._NATIVE_LOCK:  # held by "another thread" at the fork
        pid = os.fork()
        if pid == 0:  # the child: pack, or be killed by the alarm if it waits on a lock
            signal.alarm(20)
            try:
                kernel_pack.pack_kernels(params, 24, 24)
                os._exit(0)
            except BaseException:
                os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
