"""The two search spaces, derived from the op registry (no op is named here).

* :func:`adversarial` — Adversarial AutoAugment: the 16 ops × 10 magnitude bins;
  a controller picks an op and a bin for each of a sub-policy's two slots.
* :func:`aws` — AWS: 36 elements = each op with a magnitude at bins 3, 6 and 9 of
  the 10-bin range, plus each op without one; an AWS op is an ordered pair of elements.
* :func:`standard` — the spaces of the standard policies of :mod:`fastpolicy.policies`
  (torchvision's magnitude ranges): ``"autoaugment"`` (10 bins), ``"randaugment"`` and
  ``"trivialaugment_wide"`` (31 bins), ``"timm"`` and ``"dali"`` (11 bins).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cache

from .magnitude import N_BINS, SPACE_BINS, Magnitude
from .registry import OPS, on_change

AWS_BINS = (3, 6, 9)
"""Bins of the 10-bin range that AWS keeps for ops with a magnitude."""


@dataclass(frozen=True)
class Element:
    """One (op, bin) choice; ``bin`` is None for ops without a magnitude."""

    op: str
    bin: int | None

    @property
    def name(self) -> str:
        """``"ShearX@3"``, or just ``"Invert"`` without a magnitude."""
        return self.op if self.bin is None else f"{self.op}@{self.bin}"


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """Ops and bins one search may choose from.

    Attributes:
        name: ``"adversarial"`` or ``"aws"``; the key of the ops' magnitude mappings.
        ops: op names, in registry order.
        n_bins: magnitude bins (10).
        elements: every (op, bin) choice of the space, in registry order.
    """

    name: str
    ops: tuple[str, ...]
    n_bins: int
    elements: tuple[Element, ...]

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and (
            self is other or (self.name, self.ops, self.n_bins) == (other.name, other.ops, other.n_bins)
        )

    def __hash__(self):  # by name: spaces are looked up per batch (caches, sets), elements are many
        return hash((self.name, self.n_bins))

    def magnitude(self, op: str) -> Magnitude | None:
        """The op's bin→value mapping in this space (None: no magnitude)."""
        if op not in self.ops:
            raise KeyError(f"op {op!r} is not in the {self.name} search space; its ops: {', '.join(self.ops)}")
        return OPS[op].magnitude(self.name)

    def value(self, op: str, bin: int, sign: int = 1) -> float:
        """``op``'s value (its parameter in physical units) at magnitude ``bin`` and ``sign``
        (±1, used by signed magnitudes) in this space; 0.0 for ops without a magnitude."""
        magnitude = self.magnitude(op)
        return 0.0 if magnitude is None else magnitude.value(bin, sign, self.n_bins)

    def check_bin(self, op: str, bin: int) -> None:
        """Raise ValueError unless ``bin`` is a valid magnitude bin for ``op`` here."""
        self.magnitude(op)
        if isinstance(bin, bool) or not isinstance(bin, numbers.Integral) or not 0 <= bin < self.n_bins:
            raise ValueError(f"magnitude bin {bin!r} of {op} out of range [0, {self.n_bins})")


@cache
def adversarial() -> SearchSpace:
    """Adversarial AutoAugment's space: 16 ops, 10 bins each."""
    ops = tuple(name for name, spec in OPS.items() if "adversarial" in spec.magnitudes)
    return SearchSpace("adversarial", ops, N_BINS, tuple(Element(op, b) for op in ops for b in range(N_BINS)))


@cache
def aws() -> SearchSpace:
    """AWS's space: 36 elements (11 ops × bins 3, 6, 9, plus AutoContrast, Invert, Equalize)."""
    ops = tuple(name for name, spec in OPS.items() if "aws" in spec.magnitudes)
    elements = []
    for op in ops:
        if OPS[op].magnitude("aws") is None:
            elements.append(Element(op, None))
        else:
            elements.extend(Element(op, b) for b in AWS_BINS)
    return SearchSpace("aws", ops, N_BINS, tuple(elements))


STANDARD_BINS = {name: bins for name, bins in SPACE_BINS.items() if name not in ("adversarial", "aws")}
"""Magnitude bins of the standard policies' spaces (torchvision's defaults; ``"timm"``: the
ops only timm's policies use, at its 11 whole magnitude levels 0 … 10 — its strings sample
their own levels, see :mod:`fastpolicy.timm_strings`; ``"dali"``: DALI's AutoAugment suites'
ranges over 11 bins, for ``autoaugment("reduced_imagenet")`` and ``("reduced_cifar10")``)."""


@cache
def standard(name: str) -> SearchSpace:
    """A standard policy's space: the registry ops with a ``name`` magnitude, every bin."""
    if name not in STANDARD_BINS:
        raise ValueError(f"unknown standard space {name!r}; known: {', '.join(STANDARD_BINS)}")
    ops = tuple(op for op, spec in OPS.items() if name in spec.magnitudes)
    n_bins = STANDARD_BINS[name]
    return SearchSpace(name, ops, n_bins, tuple(Element(op, b) for op in ops for b in range(n_bins)))


@on_change
def _forget_spaces() -> None:
    """An op was registered or removed: the spaces are derived again at their next use."""
    adversarial.cache_clear()
    aws.cache_clear()
    standard.cache_clear()


def get_space(name: str) -> SearchSpace:
    """The search space called ``name``."""
    if name in STANDARD_BINS:
        return standard(name)
    spaces = {"adversarial": adversarial, "aws": aws}
    if name not in spaces:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join([*spaces, *STANDARD_BINS])}")
    return spaces[name]()
