"""From chosen (op, bin) slots to complete per-sample parameters.

Both policy models choose, per sample, op ids and bins; :func:`complete` draws
everything else a backend needs (signs, Cutout centres, SamplePairing partners)
and turns bins into values with the space's magnitude mappings.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .params import NO_OP, PolicyParams
from .registry import OP_NAMES, OPS
from .spaces import SearchSpace


@lru_cache(maxsize=None)
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


def complete(op: np.ndarray, bin: np.ndarray, space: SearchSpace, rng: np.random.Generator,
             policy: np.ndarray | int = 0, version: int = 0) -> PolicyParams:
    """Draw signs, centres and partners for chosen slots and build :class:`PolicyParams`.

    Args:
        op: int[N, K] op ids (-1: slot skipped).
        bin: int[N, K] magnitude bins (ignored for ops without magnitude and for skipped slots).
        space: the space whose magnitude mappings give the values.
        rng: the only source of randomness, so sampling is reproducible from a seed.
        policy: int[N] or a scalar, the policy index of each sample.
        version: the policy version the samples come from.
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
    partner = (np.arange(n)[:, None] + rng.integers(1, max(n, 2), size=(n, k))) % max(n, 1)
    return PolicyParams(
        op=op, bin=np.where(has_magnitude, safe_bin, -1), sign=sign, value=value, center=center,
        partner=partner, policy=np.broadcast_to(np.asarray(policy), (n,)), version=version)
