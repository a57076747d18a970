"""The policies of a loader's M copies, their version, and how a batch's parameters are drawn.

A :class:`PolicySet` holds one sampler per copy (or none: baseline only) and a version
bumped by every :meth:`~PolicySet.set`. Its slots are the policies' ``slots`` op slots
followed by the *final slots* it declares (:class:`FinalSlot`: the loader's Cutout), all
drawn in :meth:`~PolicySet.sample` from one generator seeded by ``(seed, shard, epoch,
step)``: the policy slots first (one vectorized :func:`~fastpolicy.sampling.sample_policies`
pass, then the magnitude scale), then each final slot in order. A batch's parameters
therefore depend only on its position and the policies.

A batch's sampling is a few hundred Python and NumPy calls, several times slower right
after the policy stage has swept the caches than when repeated at once; so when steps are
asked for in order under unchanged policies, :meth:`~PolicySet.sample` draws the next
:data:`AHEAD` steps of the epoch together and hands out the later ones when asked, as long
as the policies (and their version) and ``n`` are the same: the same parameters, drawn in
one warm run. Policies changed at every batch (a controller updated per step) are drawn one
step at a time, as before.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..batch_seed import BatchSeed
from ..params import PolicyParams
from ..registry import OPS
from ..sampling import sample_policies, share_equal

AHEAD = 8
"""Batches (steps of one epoch) :meth:`PolicySet.sample` draws together (module docstring)."""


def is_sampler(obj) -> bool:
    """True for a policy model the loader samples from (``space``, ``n_ops``, ``choose``)."""
    return all(hasattr(obj, name) for name in ("space", "n_ops", "choose"))


@dataclass(frozen=True)
class FinalSlot:
    """Registry op ``op`` at ``value`` on every row, in a slot of its own after the policy's
    slots, centred at a point drawn uniformly per row (``center``, fractions in [0, 1)).

    The loader's ``cutout`` of S px on an H×W crop is ``FinalSlot("Cutout", S / min(H, W))``.
    """

    op: str
    value: float

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r} for a final slot")

    def sample(self, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The slot's fields for ``rows`` rows, [rows, 1] each (``center`` [rows, 1, 2], one
        ``rng.random`` draw)."""
        return {
            "op": np.full((rows, 1), OPS[self.op].id),
            "bin": np.full((rows, 1), -1),
            "sign": np.ones((rows, 1)),
            "value": np.full((rows, 1), self.value),
            "center": rng.random((rows, 1, 2)),
            "partner": np.zeros((rows, 1), np.int64),
        }


class PolicySet:
    """The M copies' policies and their version; the parameters of every batch.

    Args:
        M: copies, one policy each.
        slots: op slots the policies may fill.
        seed, shard_id: with the batch's epoch and step, seed its generator.
        magnitude_scale: in (0, 1]; the policies' sampled values are scaled by
            :meth:`~fastpolicy.params.PolicyParams.scaled` (final slots are not).
        final: slots applied after the policy's on every row, with or without policies.
    """

    def __init__(self, M: int, slots: int, seed: int, shard_id: int, magnitude_scale: float = 1.0, final: tuple = ()):
        self.M, self.policy_slots, self.seed, self.shard_id = M, slots, seed, shard_id
        self.magnitude_scale, self.final = float(magnitude_scale), tuple(final)
        self._current: tuple = (None, 0)  # (samplers, version), swapped whole (read by the prefetch thread)
        self._ahead: dict = {}  # (n, epoch, step) → its result, drawn under _current (set clears it)
        self._last: tuple | None = None  # (the _current, n, epoch, step) of the last sample call
        self._lock = threading.Lock()

    @property
    def slots(self) -> int:
        """Op slots per row of the sampled parameters: the policy's and the final ones."""
        return self.policy_slots + len(self.final)

    @property
    def version(self) -> int:
        """The current version (bumped by every :meth:`set`)."""
        return self._current[1]

    @property
    def policies(self) -> list | None:
        """The sampler per copy (list of M) or None."""
        return self._current[0]

    def set(self, policies) -> int:
        """Use ``policies`` from now on; returns the new version.

        ``policies``: a list of M samplers (copy m uses sampler m), one sampler for all
        copies, a standard policy's name or a policy file's path (see
        :func:`fastpolicy.policies.resolve`), or None (no policy). Equal samplers are shared
        (:func:`~fastpolicy.sampling.share_equal`), so they are drawn together.
        """
        if isinstance(policies, (str, os.PathLike)):
            from ..policies import resolve

            policies = resolve(os.fspath(policies))
            if not is_sampler(policies):
                raise ValueError(
                    "a policy schedule holds one set of policies per epoch: the loader's set_policies follows "
                    "one epoch by epoch (PolicySet takes one epoch's policies: schedule.for_copies(epoch, M))"
                )
        if policies is None:
            samplers = None
        elif is_sampler(policies):
            samplers = [policies] * self.M
        else:
            samplers = list(policies)
            if len(samplers) != self.M:
                raise ValueError(f"got {len(samplers)} policies for M={self.M} copies")
            for i, p in enumerate(samplers):
                if not is_sampler(p):
                    raise TypeError(
                        f"policies[{i}] is a {type(p).__name__}, not a Policy, AWSDistribution or standard policy"
                    )
        if samplers is not None:
            self._check(samplers)
        with self._lock:
            self._current = (None if samplers is None else share_equal(samplers), self.version + 1)
            self._ahead = {}
        return self.version

    def _check(self, samplers: list) -> None:
        """ValueError unless one batch can hold ``samplers``: their ops fit the slots; AugMix alone,
        of one shape (chains, slots per chain, mix), its chains within the slots."""
        mixing = {getattr(s, "mixes", False) for s in samplers}
        if len(mixing) > 1:
            raise ValueError("AugMix cannot share a batch with other policies: give AugMix alone (or M copies of it)")
        if mixing == {True}:  # AugMix: the stage applies one chain at a time
            shapes = {s.mix_shape for s in samplers}
            if len(shapes) > 1:
                raise ValueError(
                    "the AugMix policies of one batch must share their chains, slots per chain and mix, got "
                    + ", ".join(str(shape) for shape in sorted(shapes))
                )
            k = max(s.depth for s in samplers)
            if k > self.policy_slots:
                raise ValueError(
                    f"AugMix applies chains of up to {k} ops; the loader was built with slots={self.policy_slots}: "
                    f"build it with Augment(slots={k})"
                )
            return
        k = max(s.n_ops for s in samplers)
        if k > self.policy_slots:
            raise ValueError(f"policies apply {k} ops per sample; the loader was built with slots={self.policy_slots}")

    def sample(self, n: int, epoch: int, step: int, steps: int | None = None) -> tuple[PolicyParams | None, int]:
        """The parameters of batch ``step`` of ``epoch`` with ``n`` distinct images under the
        current policies, and their version: a :class:`~fastpolicy.params.PolicyParams` of
        M·n rows, policy-major, :attr:`slots` slots (``op``, ``bin`` int64 [M·n, slots];
        ``sign``, ``value`` float64 [M·n, slots]; ``center`` float64 [M·n, slots, 2], fractions
        of the height and width; ``partner`` int64 [M·n, slots]; ``policy`` [M·n]), or None when
        there are neither policies nor final slots. Handed out from an earlier call's draw when
        that call drew it ahead: the step right after the previous call's, under the same
        policies and ``n``, draws itself and the next :data:`AHEAD` − 1 steps below ``steps``
        (the epoch's batches; None: no bound)."""
        with self._lock:
            current = self._current
            kept = self._ahead.pop((n, epoch, step), None)
            in_order, self._last = self._last == (current, n, epoch, step - 1), (current, n, epoch, step)
            if kept is not None:
                return kept
            count = 1 if not in_order else max(1, min(AHEAD, AHEAD if steps is None else steps - step))
            drawn = [self._draw(current, n, epoch, step + k) for k in range(count)]
            self._ahead = {(n, epoch, step + k): drawn[k] for k in range(1, count)}
        return drawn[0]

    def draw(self, n: int, epoch: int, step: int) -> tuple[PolicyParams | None, int]:
        """What :meth:`sample` hands out for this position (fields as there), drawn now; it
        neither reads nor changes the steps :meth:`sample` keeps."""
        return self._draw(self._current, n, epoch, step)

    def _draw(self, current: tuple, n: int, epoch: int, step: int) -> tuple[PolicyParams | None, int]:
        """:meth:`sample`'s draw under ``current`` (samplers, version)."""
        samplers, version = current
        if samplers is None and not self.final:
            return None, version
        rng = BatchSeed(self.seed, self.shard_id, 1, epoch, step)  # default_rng of these, made if needed
        rows = self.M * n
        if samplers is None:
            policy_rows, fields = np.repeat(np.arange(self.M), n), PolicyParams.skipped_fields(rows, self.policy_slots)
        mixing: dict = {}
        if samplers is not None:
            mixed = getattr(samplers[0], "mixes", False)  # AugMix: W chains in the rows, the stage one at a time
            slots = max(s.n_ops for s in samplers) if mixed else self.policy_slots
            params = sample_policies(samplers, n, rng, version=version, slots=slots)
            params = params if self.magnitude_scale == 1 else params.scaled(self.magnitude_scale)
            if not self.final:
                return params, version  # the sampler's own parameters: no slot to append
            policy_rows, fields = params.policy, {name: getattr(params, name) for name in PolicyParams.SLOT_FIELDS}
            mixing = params.mixing  # AugMix: the final slots apply to the mixed images
        columns = [fields] + [slot.sample(rows, rng.generator()) for slot in self.final]
        joined: dict[str, Any] = {
            name: np.concatenate([c[name] for c in columns], axis=1) for name in PolicyParams.SLOT_FIELDS
        }
        return PolicyParams(**joined, policy=policy_rows, version=version, **mixing), version

    def state(self) -> tuple[list[dict] | None, int]:
        """``(policies as dicts or None, version)``, what :meth:`restore` takes."""
        samplers, version = self._current
        return (None if samplers is None else [p.to_dict() for p in samplers]), version

    def restore(self, policies: list[dict] | None, version: int) -> None:
        """Take the policies and version of :meth:`state`."""
        from ..policies import sampler_from_dict

        samplers = None if policies is None else share_equal(sampler_from_dict(p) for p in policies)
        if samplers is not None:
            self._check(samplers)  # a saved state meets the checks a set does
        with self._lock:
            self._current, self._ahead = (samplers, version), {}
