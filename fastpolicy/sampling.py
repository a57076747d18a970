"""From chosen (op, bin) slots to complete per-sample parameters, for M policies at once.

Every policy model (a :class:`~fastpolicy.policy.Policy`, an
:class:`~fastpolicy.distribution.AWSDistribution`, the standard policies of
:mod:`fastpolicy.policies`) is a *sampler*: it has a ``space`` and ``n_ops`` and
``choose(n, rng) -> (op int64[n, K], bin int64[n, K])`` picks op ids and magnitude bins
per sample (op -1: slot skipped). :func:`complete` draws everything else a backend needs
(signs, Cutout centres, SamplePairing partners) and turns bins into values with the
space's magnitude mappings. :func:`sample_policies` is the one sampler, of a loader batch
(M policies × n images in one vectorized pass) and of a
:class:`~fastpolicy.transforms.PolicyAugment` call alike (:func:`sample_mixture`: a schedule
epoch's several policies, one drawn per image). Samplers with sub-policy tables of one shape
and space (Policies, the AutoAugment tables, RandAugment and TrivialAugmentWide written as
tables) are drawn by the compiled sampler (:mod:`fastpolicy.sample_native`), the same draws as
the NumPy code here, which runs where no compiler is.

A sampler made of sub-policies (a :class:`~fastpolicy.policy.Policy`) keeps them as
:class:`SubPolicyTables` in its ``sub_policy_tables`` attribute; :func:`sample_policies` stacks
the tables of samplers of one shape and space and draws them together. This module knows
samplers only by that interface and imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .batch_seed import BatchSeed, generator_of
from .params import NO_OP, PolicyParams
from .registry import OP_NAMES, OPS, on_change
from .spaces import SearchSpace


@dataclass(frozen=True, eq=False)
class SubPolicyTables:
    """S sub-policies of at most K ops as arrays (short ones padded with op -1, probability 0).

    Attributes:
        op: int64[S, K] registry op ids (-1: no op in that slot).
        bin: int64[S, K] magnitude bins.
        prob: float64[S, K] probability that each op is applied.
    """

    op: np.ndarray
    bin: np.ndarray
    prob: np.ndarray

    @property
    def n_ops(self) -> int:
        """K, op slots of the longest sub-policy."""
        return self.op.shape[1]

    def choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int64[n, K] op ids and bins: a uniformly chosen sub-policy per sample, each op kept
        with its probability (skipped: op -1)."""
        op, bin_ = choose_stacked([self], n, rng)
        return op[0], bin_[0]


def choose_stacked(tables: list[SubPolicyTables], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`SubPolicyTables.choose` for G tables of one shape [S, K] in one pass: int64[G, n, K]
    op ids and bins (draws: the sub-policy per sample, then whether each slot is kept)."""
    op, bin_, prob = (np.stack(t) for t in zip(*((t.op, t.bin, t.prob) for t in tables)))
    chosen = rng.integers(0, op.shape[1], size=(len(tables), n))
    rows = np.arange(len(tables))[:, None]
    keep = rng.random((len(tables), n, op.shape[2])) < prob[rows, chosen]
    return np.where(keep, op[rows, chosen], NO_OP), bin_[rows, chosen]


@cache
def value_tables(space: SearchSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-op tables over the whole registry for ``space``.

    Returns:
        values: float64[n_ops, n_bins, 2], value at (op id, bin, sign −1 / +1); 0 for ops
            without magnitude or outside the space.
        signed: bool[n_ops], whether the op draws a random sign in this space.
        has_magnitude: bool[n_ops], whether the op has a magnitude in this space.

    Computed once per space (cached) and returned read-only.
    """
    values = np.zeros((len(OP_NAMES), space.n_bins, 2))
    signed = np.zeros(len(OP_NAMES), dtype=bool)
    has_magnitude = np.zeros(len(OP_NAMES), dtype=bool)
    for op in space.ops:
        magnitude = space.magnitude(op)
        if magnitude is not None:
            values[OPS[op].id] = magnitude.table(space.n_bins)
            signed[OPS[op].id] = magnitude.signed
            has_magnitude[OPS[op].id] = True
    for table in (values, signed, has_magnitude):
        table.flags.writeable = False
    return values, signed, has_magnitude


on_change(value_tables.cache_clear)  # a registered op: tables over the grown registry


def complete(
    op: np.ndarray,
    bin: np.ndarray,
    space: SearchSpace,
    rng: np.random.Generator,
    policy: np.ndarray | int = 0,
    version: int = 0,
    block: int | None = None,
) -> PolicyParams:
    """Draw signs, centres and partners for chosen slots and build :class:`PolicyParams`.

    Args:
        op: int[N, K] op ids (-1: slot skipped).
        bin: int[N, K] magnitude bins (ignored for ops without magnitude and for skipped slots).
        space: the space whose magnitude mappings give the values.
        rng: the only source of randomness, so sampling is reproducible from a seed.
        policy: int[N] or a scalar, the policy index of each sample.
        version: the policy version the samples come from.
        block: SamplePairing partners are drawn within consecutive blocks of this many
            rows (a policy's copies of the batch's distinct images); None: one block.
    """
    op = np.asarray(op, dtype=np.int64)
    n, k = op.shape
    values, signed, op_has_magnitude = value_tables(space)
    active = op != NO_OP
    safe_op = np.where(active, op, 0)
    has_magnitude = active & op_has_magnitude[safe_op]
    safe_bin = np.where(has_magnitude, np.asarray(bin, dtype=np.int64), 0)
    sign = np.where(signed[safe_op] & active, rng.choice(np.array([-1, 1]), size=(n, k)), 1)
    value = np.where(has_magnitude, values[safe_op, safe_bin, (sign + 1) // 2], 0.0)
    center = rng.random((n, k, 2))
    block = (n or 1) if block is None else block  # (no rows: one empty block)
    if block < 1 or n % block:
        raise ValueError(f"block {block} does not divide the {n} rows")
    local = np.arange(n) % block
    partner = (np.arange(n) - local)[:, None] + (local[:, None] + rng.integers(1, max(block, 2), size=(n, k))) % block
    return PolicyParams(
        op=op,
        bin=np.where(has_magnitude, safe_bin, -1),
        sign=sign,
        value=value,
        center=center,
        partner=partner,
        policy=np.broadcast_to(np.asarray(policy), (n,)),
        version=version,
    )


def sample_policies(
    samplers, n: int, rng: np.random.Generator | BatchSeed, version: int = 0, slots: int | None = None
) -> PolicyParams:
    """Parameters for M samplers × ``n`` images in one pass, policy-major: rows
    ``m·n … (m+1)·n − 1`` belong to ``samplers[m]`` and carry ``policy == m``; SamplePairing
    partners stay within each block (the block holds the batch's ``n`` distinct images).

    Samplers that are the same object (one AWS distribution for all copies) draw their
    M·n samples in one call; samplers with :class:`SubPolicyTables` (``Policy`` objects) of
    one shape and space are stacked and drawn together (Adversarial AutoAugment's M policies). ``slots``
    pads every row to that many op slots (default: the largest ``n_ops``). ``rng``: a Generator,
    or a :class:`~fastpolicy.batch_seed.BatchSeed` (its Generator made only if the NumPy path
    draws; the same draws either way).
    """
    samplers = list(samplers)
    if not samplers:
        raise ValueError("sample_policies needs at least one policy")
    m_count = len(samplers)
    k = max(s.n_ops for s in samplers)
    if slots is not None:
        if slots < k:
            raise ValueError(f"policies apply {k} ops per sample; only {slots} slots")
        k = slots
    if any(getattr(s, "draws_values", False) for s in samplers):
        return _sample_each(samplers, n, generator_of(rng), version, k)
    native = _sample_compiled(samplers, n, k, rng, version)
    if native is not None:
        return native
    rng = generator_of(rng)
    op = np.full((m_count, n, k), NO_OP, np.int64)
    bin_ = np.zeros((m_count, n, k), np.int64)
    groups: dict = {}
    for m, sampler in enumerate(samplers):
        tables = getattr(sampler, "sub_policy_tables", None)
        if isinstance(tables, SubPolicyTables):
            key = ("tables", sampler.space.name, tables.op.shape)
        else:
            key = ("object", str(id(sampler)), ())
        groups.setdefault(key, []).append(m)
    spaces = {s.space for s in samplers}
    for key, members in groups.items():
        first = samplers[members[0]]
        if key[0] == "tables":
            g_op, g_bin = choose_stacked([samplers[m].sub_policy_tables for m in members], n, rng)
        else:
            g_op, g_bin = first.choose(n * len(members), rng)
            g_op, g_bin = g_op.reshape(len(members), n, -1), g_bin.reshape(len(members), n, -1)
        op[members, :, : g_op.shape[2]] = g_op
        bin_[members, :, : g_op.shape[2]] = g_bin
    policy = np.repeat(np.arange(m_count), n)
    if len(spaces) == 1:
        return complete(op.reshape(-1, k), bin_.reshape(-1, k), spaces.pop(), rng, policy, version, block=n)
    parts = [complete(op[m], bin_[m], samplers[m].space, rng, m, version) for m in range(m_count)]
    return PolicyParams.concat(parts)


def sample_mixture(samplers, n: int, rng: np.random.Generator, version: int = 0) -> PolicyParams:
    """Parameters for ``n`` rows, each from one of ``samplers`` drawn uniformly (``policy``: its
    index): the draw of every row's sampler, then each sampler's rows by :func:`sample_policies`
    in sampler order (padded to the most slots; SamplePairing partners within each sampler's
    rows). What a transform does with a schedule epoch's several policies."""
    samplers = list(samplers)
    which = rng.integers(0, len(samplers), size=n)
    k = max(s.n_ops for s in samplers)
    parts, order = [], []
    for m, sampler in enumerate(samplers):
        rows = np.flatnonzero(which == m)
        if len(rows):
            part = sample_policies([sampler], len(rows), rng, version=version, slots=k)
            parts.append(
                PolicyParams(**(part.arrays() | {"policy": np.full(len(rows), m)}), version=version, **part.mixing)
            )
            order.append(rows)
    joined = PolicyParams.concat(parts)  # rows grouped by sampler: put them back in image order
    back = np.empty(n, np.int64)
    back[np.concatenate(order)] = np.arange(n)
    taken = joined.take(back)
    moved = np.argsort(back)  # old row of each new row → new row of each old row
    return PolicyParams(**(taken.arrays() | {"partner": moved[taken.partner]}), version=version, **taken.mixing)


def _sample_compiled(
    samplers: list, n: int, k: int, rng: np.random.Generator | BatchSeed, version: int
) -> PolicyParams | None:
    """:func:`sample_policies`'s result from the compiled sampler (:mod:`fastpolicy.sample_native`)
    when every sampler has sub-policy tables of one shape and one space (the same draws as the
    NumPy code below); None otherwise, or without a compiler."""
    tables = [getattr(s, "sub_policy_tables", None) for s in samplers]
    first = tables[0]
    if not isinstance(first, SubPolicyTables) or min(first.op.shape) < 1 or k < first.op.shape[1]:
        return None  # (empty tables: the NumPy path raises, naming the problem)
    space = samplers[0].space
    for sampler, table in zip(samplers, tables):
        if not isinstance(table, SubPolicyTables) or table.op.shape != first.op.shape or sampler.space != space:
            return None
    from . import sample_native

    return sample_native.sample_tables(tuple(tables), value_tables(space), n, k, rng, version)


def _sample_each(samplers, n: int, rng: np.random.Generator, version: int, k: int) -> PolicyParams:
    """:func:`sample_policies` when a sampler draws its values itself (``draws_values``: its
    ``sample`` gives whole :class:`PolicyParams`, as a timm string does): each sampler's ``n``
    rows in turn, padded to ``k`` slots."""
    parts = []
    for m, sampler in enumerate(samplers):
        if getattr(sampler, "draws_values", False):
            part = sampler.sample(n, rng, policy_index=m, version=version)
        else:
            op, bin_ = sampler.choose(n, rng)
            part = complete(op, bin_, sampler.space, rng, m, version)
        parts.append(part.padded(k))
    return PolicyParams.concat(parts)


def share_equal(samplers) -> list:
    """``samplers`` with equal ones (same ``to_dict()``) replaced by the first of them, so
    :func:`sample_policies` draws them together, as it would the same object; a loader
    does this whenever it is given policies (set or restored), so its batches do not
    depend on whether equal policies arrived as one object or as copies."""
    out: list = []
    seen: list[tuple[object, dict]] = []
    for sampler in samplers:
        data = sampler.to_dict()
        match = next((first for first, first_data in seen if first_data == data), None)
        if match is None:
            seen.append((sampler, data))
        out.append(sampler if match is None else match)
    return out
