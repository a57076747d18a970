"""Per-sample policy parameters: the small arrays that travel from a policy to a backend.

Sampling (:mod:`fastpolicy.policy`, :mod:`fastpolicy.distribution`) produces a
:class:`PolicyParams`; every backend applies it as a pure function
``apply(images, params)``. Sample ``i`` applies ops ``op[i, 0]``, ``op[i, 1]``, …
in order; an op id of -1 is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .registry import OP_NAMES, OPS

NO_OP = -1
"""Op id meaning "apply nothing at this position" (a sub-policy op skipped by its probability)."""


@dataclass(frozen=True)
class PolicyParams:
    """Parameters of N samples with K op slots each.

    Attributes:
        op: int16[N, K], registry op id (:data:`fastpolicy.registry.OP_NAMES`), or -1.
        bin: int8[N, K], magnitude bin the value came from (-1 where none).
        sign: int8[N, K], ±1, the random sign drawn for signed ops (+1 otherwise).
        value: float64[N, K], the op's parameter in its physical unit.
        center: float64[N, K, 2], Cutout centre (cy, cx) as fractions in [0, 1).
        partner: int32[N, K], SamplePairing partner: index of another sample of the batch.
        policy: int32[N], which of the M policies produced each sample.
        version: policy version the arrays were sampled from (bumped on every
            ``set_policies``), so a batch reports the policy it was augmented with.
        mix: float32[N, W + 1] or None: AugMix's weights (:mod:`fastpolicy.mixing`) — the
            original image's, then each of W chains'. With it the first ``W · chain_slots``
            slots are W chains of ``chain_slots`` slots, each applied to the original image,
            mixed by these weights; any later slots apply to the mixed image.
        chain_slots: slots per chain (0 without ``mix``).
        mix_blend: how the chains are mixed: False, torchvision's (``mix[:, 0] · x + Σ mix[:, c]
            · chain c``, truncated); True, timm's (``Σ mix[:, c] · chain c``, clipped and
            truncated, then PIL's blend of the image towards it by ``mix[:, 0]``).
    """

    op: np.ndarray
    bin: np.ndarray
    sign: np.ndarray
    value: np.ndarray
    center: np.ndarray
    partner: np.ndarray
    policy: np.ndarray
    version: int = 0
    mix: np.ndarray | None = None
    chain_slots: int = 0
    mix_blend: bool = False

    _DTYPES: ClassVar[dict[str, type]] = {
        "op": np.int16,
        "bin": np.int8,
        "sign": np.int8,
        "value": np.float64,
        "center": np.float64,
        "partner": np.int32,
        "policy": np.int32,
    }

    SLOT_FIELDS: ClassVar[tuple[str, ...]] = ("op", "bin", "sign", "value", "center", "partner")
    """The per-slot fields ([N, K] each; ``center`` [N, K, 2])."""

    _SKIP: ClassVar[dict[str, float]] = {"op": NO_OP, "bin": -1, "sign": 1, "value": 0.0, "center": 0.0, "partner": 0}
    """Each slot field's value in a skipped slot (op -1)."""

    @classmethod
    def skipped_fields(cls, n: int, k: int) -> dict[str, Any]:
        """The :attr:`SLOT_FIELDS` of ``k`` skipped slots (op -1) for ``n`` samples."""
        return {
            name: np.full((n, k, 2) if name == "center" else (n, k), fill, cls._DTYPES[name])
            for name, fill in cls._SKIP.items()
        }

    @classmethod
    def skipped(cls, n: int, k: int = 1, policy=None, version: int = 0) -> PolicyParams:
        """``n`` samples whose ``k`` slots are all skipped: a stage only copies (and converts)
        them. ``policy``: int[n] (default 0 for every sample)."""
        policy = np.zeros(n) if policy is None else policy
        return cls(**cls.skipped_fields(n, k), policy=policy, version=version)

    def __post_init__(self):
        for name, dtype in self._DTYPES.items():
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        if self.mix is not None:
            object.__setattr__(self, "mix", np.ascontiguousarray(self.mix, dtype=np.float32))
        self.validate()

    @classmethod
    def trusted(cls, **fields) -> PolicyParams:
        """Parameters from arrays of the right dtypes, shapes and ranges by construction (the
        compiled sampler's): kept as they are, without :meth:`validate`'s passes."""
        out = cls.__new__(cls)
        out.__dict__.update(version=0, mix=None, chain_slots=0, mix_blend=False)
        out.__dict__.update(fields)
        return out

    @property
    def mixing(self) -> dict[str, Any]:
        """``mix`` and ``chain_slots`` as keyword arguments (empty without a mix): what a
        method that rebuilds the parameters passes on."""
        if self.mix is None:
            return {}
        return {"mix": self.mix, "chain_slots": self.chain_slots, "mix_blend": self.mix_blend}

    @property
    def n(self) -> int:
        """Number of samples N."""
        return self.op.shape[0]

    @property
    def k(self) -> int:
        """Op slots per sample K."""
        return self.op.shape[1]

    def validate(self) -> None:
        """Raise ValueError naming the field whose shape or values are wrong."""
        if self.op.ndim != 2:
            raise ValueError(f"op must be [N, K], got shape {self.op.shape}")
        n, k = self.op.shape
        expected = {
            "bin": (n, k),
            "sign": (n, k),
            "value": (n, k),
            "center": (n, k, 2),
            "partner": (n, k),
            "policy": (n,),
        }
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {getattr(self, name).shape}")
        if self.mix is not None:
            chains = self.mix.shape[1] - 1 if self.mix.ndim == 2 else 0
            if self.mix.shape[:1] != (n,) or chains < 1:
                raise ValueError(f"mix must have shape ({n}, W + 1) with W ≥ 1 chains, got {self.mix.shape}")
            if isinstance(self.chain_slots, bool) or not isinstance(self.chain_slots, (int, np.integer)):
                raise ValueError(f"chain_slots must be a whole number of slots, got {self.chain_slots!r}")
            if not self.chain_slots >= 1 or chains * self.chain_slots > k:
                raise ValueError(f"{chains} chains of chain_slots={self.chain_slots} do not fit in {k} slots")
            if not (np.isfinite(self.mix).all() and (self.mix >= 0).all()):
                raise ValueError("mix weights must be finite and ≥ 0")
            if not isinstance(self.mix_blend, (bool, np.bool_)):
                raise ValueError(f"mix_blend must be True or False, got {self.mix_blend!r}")
            # convex weights (to float32 rounding): a mix never leaves 0..255, so no stage wraps
            totals = self.mix[:, 1:].sum(axis=1) if self.mix_blend else self.mix.sum(axis=1)
            if (totals > 1 + 1e-4).any() or (self.mix_blend and (self.mix[:, 0] > 1).any()):
                raise ValueError("mix weights must sum to at most 1 (and timm's blend factor be at most 1)")
        elif self.chain_slots or self.mix_blend:
            raise ValueError("chain_slots or mix_blend without mix weights")
        if self.op.size == 0:
            return
        # min/max reductions, no temporaries: every batch's parameters pass here (twice per loader step)
        if self.op.min() < NO_OP or self.op.max() >= len(OP_NAMES):
            raise ValueError(f"op ids must be in [-1, {len(OP_NAMES)}), got {np.unique(self.op)}")
        if self.partner.min() < 0 or self.partner.max() >= max(n, 1):
            raise ValueError(f"partner indices must be in [0, {n})")
        if not (np.abs(self.sign) == 1).all():
            raise ValueError("sign must be -1 or +1")
        if self.center.min() < 0 or self.center.max() >= 1:
            raise ValueError("center must lie in [0, 1)")

    def take(self, index) -> PolicyParams:
        """Rows ``index`` (int array or slice); partners are kept as given, so re-map them if
        the selection is used as a batch of its own."""
        mixing = self.mixing | ({"mix": self.mix[index]} if self.mix is not None else {})
        return PolicyParams(**{f: getattr(self, f)[index] for f in self._DTYPES}, version=self.version, **mixing)

    def pad_slots(self, k: int) -> PolicyParams:
        """The same parameters with ``k`` op slots (≥ ``self.k``): extra slots are skipped (op -1)."""
        if k < self.k:
            raise ValueError(f"cannot pad {self.k} op slots down to {k}")
        skipped = self.skipped_fields(self.n, k - self.k)
        skipped["partner"] = self.partner[:, :1].repeat(k - self.k, 1)  # a valid index even for N = 1
        padded: dict[str, Any] = {
            name: np.concatenate([getattr(self, name), skipped[name]], axis=1) for name in self.SLOT_FIELDS
        }
        return PolicyParams(**padded, policy=self.policy, version=self.version, **self.mixing)

    def scaled(self, scale: float) -> PolicyParams:
        """The same samples with every value moved to ``identity + scale · (value − identity)``
        of its op (:attr:`~fastpolicy.registry.OpSpec.identity`; whole-number ops rounded):
        ``scale`` in (0, 1] keeps each op's direction and narrows its range (1: unchanged)."""
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale!r}")
        identity = np.array([OPS[name].identity for name in OP_NAMES] + [0.0])  # [-1] (no op) → 0
        integer = np.array([OPS[name].integer for name in OP_NAMES] + [False])
        value = identity[self.op] + scale * (self.value - identity[self.op])
        value = np.where(integer[self.op], np.round(value), value)
        value = np.where(self.op == NO_OP, self.value, value)
        arrays: dict[str, Any] = self.arrays() | {"value": value}
        return PolicyParams(**arrays, version=self.version, **self.mixing)

    def padded(self, k: int) -> PolicyParams:
        """:meth:`pad_slots`, or these parameters themselves when they have ``k`` slots already."""
        return self if k == self.k else self.pad_slots(k)

    def slots(self, start: int, stop: int) -> PolicyParams:
        """Slots ``start … stop − 1`` of every sample, as parameters of their own (no mix)."""
        fields = {name: getattr(self, name)[:, start:stop] for name in self.SLOT_FIELDS}
        return PolicyParams(**fields, policy=self.policy, version=self.version)

    def chains(self) -> list[PolicyParams]:
        """AugMix's W chains (``mix`` set): chain c is slots ``c·chain_slots …``, each applied
        to the original image."""
        if self.mix is None:
            raise ValueError("these parameters have no mix, hence no chains")
        depth = self.chain_slots
        return [self.slots(c * depth, (c + 1) * depth) for c in range(self.mix.shape[1] - 1)]

    def after_mix(self) -> PolicyParams | None:
        """The slots after the chains (applied to the mixed image), or None if there are none."""
        if self.mix is None:
            raise ValueError("these parameters have no mix")
        start = (self.mix.shape[1] - 1) * self.chain_slots
        return self.slots(start, self.k) if start < self.k else None

    def arrays(self) -> dict[str, Any]:
        """The arrays by field name (what a loader feeds to its pipeline)."""
        return {f: getattr(self, f) for f in self._DTYPES}

    @staticmethod
    def concat(parts: list[PolicyParams]) -> PolicyParams:
        """Stack batches; each part's partner indices are shifted to stay inside that part."""
        if not parts:
            raise ValueError("concat needs at least one PolicyParams")
        versions = {p.version for p in parts}
        if len(versions) != 1:
            raise ValueError(f"cannot concatenate parameters of policy versions {sorted(versions)}")
        offsets = np.cumsum([0] + [p.n for p in parts[:-1]])
        stacked: dict[str, Any] = {f: np.concatenate([getattr(p, f) for p in parts]) for f in PolicyParams._DTYPES}
        stacked["partner"] = np.concatenate([p.partner + o for p, o in zip(parts, offsets)])
        shapes = {None if p.mix is None else (p.mix.shape[1], p.chain_slots, p.mix_blend) for p in parts}
        if len(shapes) != 1:
            raise ValueError(
                "cannot batch AugMix with other policies, or AugMix of other widths, depths or mixes: "
                f"(chains, slots per chain, timm's blend) {sorted(map(str, shapes))}"
            )
        mixing: dict[str, Any] = {}
        if parts[0].mix is not None:
            mixing = parts[0].mixing | {"mix": np.concatenate([p.mix for p in parts])}
        return PolicyParams(**stacked, version=parts[0].version, **mixing)

    def __eq__(self, other):
        if not isinstance(other, PolicyParams):
            return NotImplemented
        same_mix = (self.mix is None) == (other.mix is None) and (
            self.mix is None
            or (
                (self.chain_slots, self.mix_blend) == (other.chain_slots, other.mix_blend)
                and np.array_equal(self.mix, other.mix)
            )
        )
        return (
            self.version == other.version
            and same_mix
            and all(np.array_equal(getattr(self, f), getattr(other, f)) for f in self._DTYPES)
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, mutable arrays inside: unhashable
