"""Standard policies as samplers: AutoAugment, RandAugment, TrivialAugment, with PIL-faithful ops.

Each is a sampler (``space``, ``n_ops``, ``choose(n, rng)``; see :mod:`fastpolicy.sampling`)
that :meth:`PolicyDALILoader.set_policies <fastpolicy.loader.PolicyDALILoader.set_policies>`
and :class:`~fastpolicy.transforms.PolicyAugment` accept, sampled per image:

* :func:`autoaugment` — the published AutoAugment policies (Cubuk et al., 2019) for
  ``"imagenet"``, ``"cifar10"`` and ``"svhn"``: 25 sub-policies of two (op, probability,
  magnitude bin) each, as a :class:`~fastpolicy.policy.Policy`;
* :class:`RandAugment` — ``num_ops`` ops drawn uniformly (Identity among them), all at one
  magnitude bin of 31 (Cubuk et al., 2020);
* :class:`TrivialAugmentWide` — one op drawn uniformly (Identity among them), at a uniformly
  drawn bin of 31 (Müller & Hutter, 2021).

**Magnitudes.** The tables and bins are torchvision's; the values come from the registry's
``"autoaugment"``, ``"randaugment"`` and ``"trivialaugment_wide"`` spaces, which hold
torchvision's ranges (``fastpolicy.docs`` lists them). Where they differ from the papers'
10-bin spaces of :mod:`fastpolicy.spaces`:

* enhance ops (Brightness, Color, Contrast, Sharpness) are ``1 ± m`` with a random sign
  (m: 0 → 0.9; TrivialAugmentWide 0 → 0.99), not Adversarial AutoAugment's 0.1 → 1.9;
* Solarize's threshold is 255 → 0 (``255·linspace(1, 0)``), not 256 → 0;
* TrivialAugmentWide's translation is 32 pixels at any size in torchvision; here values are
  fractions of the side, so 32/224 of it (the same at 224²);
* translations follow AutoAugment's PIL code (a positive value moves the content left or
  up, by ``value × side`` with PIL's nearest sampling); torchvision moves it the other way
  by whole pixels. Signs are drawn ±1 with equal probability in both, so the policies are
  the same up to that sub-pixel rounding.

The ops are the registry's PIL-faithful reference: on a PIL image every other (op, value)
of these spaces gives torchvision's PIL result pixel for pixel (``tests/test_policies.py``).
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

import numpy as np

from . import jsonio, timm_strings
from .augmix import AugMix
from .distribution import FORMAT as AWS_FORMAT
from .distribution import AWSDistribution
from .jsonio import PolicyFormatError
from .params import NO_OP, PolicyParams
from .policy import FORMAT as POLICY_FORMAT
from .policy import Policy
from .registry import OPS
from .sampling import SubPolicyTables, complete
from .schedule import FORMAT as SCHEDULE_FORMAT
from .schedule import PolicySchedule
from .spaces import Element, SearchSpace, get_space
from .timm_strings import TimmPolicy

AUTOAUGMENT_TABLES = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}
AUTOAUGMENT_TABLES["reduced_imagenet"] = AUTOAUGMENT_TABLES["imagenet"]
AUTOAUGMENT_TABLES["reduced_cifar10"] = AUTOAUGMENT_TABLES["cifar10"]
"""The published AutoAugment policies: per dataset, sub-policies of (op, probability,
magnitude bin; None for ops without magnitude). ``reduced_imagenet`` and ``reduced_cifar10``
are DALI's names for the same tables (the policies AutoAugment found on its reduced ImageNet
and CIFAR-10), read in DALI's 11-bin ranges (:data:`AUTOAUGMENT_SPACES`)."""

AUTOAUGMENT_SPACES = {"imagenet": "autoaugment", "cifar10": "autoaugment", "svhn": "autoaugment"} | {
    "reduced_imagenet": "dali",
    "reduced_cifar10": "dali",
}
"""The space each AutoAugment table's bins are read in: torchvision's ranges (10 bins) or
DALI's (``"dali"``, 11 bins: ``nvidia.dali.auto_aug.auto_augment.get_reduced_image_net_policy``
and ``get_reduced_cifar10_policy``, translations in the ``shape=`` form)."""

FORMAT = jsonio.STANDARD_FORMAT


def autoaugment(dataset: str = "imagenet") -> Policy:
    """AutoAugment's published policy for ``dataset``: a :class:`~fastpolicy.policy.Policy`,
    each sample picking one of its 25 sub-policies and applying each op with its probability.
    ``"imagenet"``, ``"cifar10"``, ``"svhn"``: torchvision's ``AutoAugmentPolicy`` (the
    ``"autoaugment"`` space); ``"reduced_imagenet"``, ``"reduced_cifar10"``: DALI's policies of
    those names (the same tables in DALI's ranges, the ``"dali"`` space)."""
    if dataset not in AUTOAUGMENT_TABLES:
        raise ValueError(f"unknown AutoAugment policy {dataset!r}; known: {', '.join(AUTOAUGMENT_TABLES)}")
    return Policy(
        [
            [(op, 0 if magnitude is None else magnitude, prob) for op, prob, magnitude in sub]
            for sub in AUTOAUGMENT_TABLES[dataset]
        ],
        space=AUTOAUGMENT_SPACES[dataset],
    )


MAX_BINS = 128
"""Most magnitude bins of a standard policy (``PolicyParams.bin`` is int8: bins 0 … 127)."""

TABLE_LIMIT = 4096
"""Most sub-policies a uniform policy is written as (:attr:`_UniformOps.sub_policy_tables`): up to
it the one sampler draws it as a table (compiled), beyond it ``choose`` draws slot by slot."""


class _UniformOps(jsonio.JsonFile):
    """Ops drawn uniformly from a standard space plus Identity (skipped slot), per slot.

    Written as sub-policy tables where they are small (``sub_policy_tables``: every combination
    of the slots' equally likely choices, one sub-policy each, so a uniformly drawn sub-policy
    is the same law), the one sampler draws it like any Policy — compiled where it can be."""

    kind = ""
    sub_policy_tables: SubPolicyTables | None = None

    def _choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int64[n, K] op ids (-1: Identity) and bins: from the tables where there are some."""
        if self.sub_policy_tables is not None:
            return self.sub_policy_tables.choose(n, rng)
        return self._choose(n, rng)

    def __init__(self, space: SearchSpace):
        self.space = space
        self._ops = np.array([NO_OP] + [OPS[op].id for op in space.ops])  # index 0: Identity
        self._has_magnitude = np.array([False] + [space.magnitude(op) is not None for op in space.ops])

    def _tables(self, choices: list[tuple[int, int]], slots: int) -> SubPolicyTables | None:
        """Every combination of ``slots`` slots each taking one of ``choices`` ((op id, bin),
        equally likely) as a sub-policy; None beyond :data:`TABLE_LIMIT` of them."""
        if slots == 0 or len(choices) ** slots > TABLE_LIMIT:
            return None
        rows = np.array(list(itertools.product(range(len(choices)), repeat=slots)), np.int64)
        entries = np.array(choices, np.int64)
        op, bins = entries[rows, 0], entries[rows, 1]
        arrays = (op, np.where(op == NO_OP, -1, bins), np.where(op == NO_OP, 0.0, 1.0))
        for array in arrays:
            array.flags.writeable = False  # as a Policy's: the compiled sampler keeps a copy
        return SubPolicyTables(*arrays)

    def _draw(self, n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pick = rng.integers(0, len(self._ops), size=(n, k))
        return self._ops[pick], self._has_magnitude[pick]

    def sample(self, n: int, rng: np.random.Generator, policy_index: int = 0, version: int = 0) -> PolicyParams:
        """Per-sample parameters for ``n`` images (:meth:`choose`, then signs drawn from ``rng``)."""
        return complete(*self.choose(n, rng), self.space, rng, policy=policy_index, version=version)

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value, mutable arrays inside: unhashable

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        return jsonio.standard_from_dict(cls, data, source)


def _space_with_bins(name: str, num_magnitude_bins) -> SearchSpace:
    """Standard space ``name`` with its range spread over ``num_magnitude_bins`` bins (≥ 2), as
    torchvision's ``num_magnitude_bins``: bin b is ``b / (num_magnitude_bins − 1)`` of the range."""
    space = get_space(name)
    if (
        isinstance(num_magnitude_bins, bool)
        or not isinstance(num_magnitude_bins, int)
        or not 2 <= num_magnitude_bins <= MAX_BINS
    ):
        raise ValueError(
            f"num_magnitude_bins must be an integer in 2..{MAX_BINS} (a sample's bins are int8), "
            f"got {num_magnitude_bins!r}"
        )
    if num_magnitude_bins == space.n_bins:
        return space
    elements = tuple(Element(op, b) for op in space.ops for b in range(num_magnitude_bins))
    return SearchSpace(name, space.ops, num_magnitude_bins, elements)


class RandAugment(_UniformOps):
    """RandAugment: each sample applies ``num_ops`` ops, each drawn uniformly from the
    ``"randaugment"`` space's 13 ops and Identity, all at bin ``magnitude`` of
    ``num_magnitude_bins`` (signed ops with a random sign), as torchvision's
    ``RandAugment(num_ops, magnitude, num_magnitude_bins)`` (``num_ops = 0``: nothing applied)."""

    kind = "randaugment"

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31):
        super().__init__(_space_with_bins("randaugment", num_magnitude_bins))
        if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 0:
            raise ValueError(f"num_ops must be a non-negative integer, got {num_ops!r}")
        if isinstance(magnitude, bool) or not isinstance(magnitude, int) or not 0 <= magnitude < self.space.n_bins:
            raise ValueError(f"magnitude must be a bin in [0, {self.space.n_bins}), got {magnitude!r}")
        self.num_ops, self.magnitude, self.num_magnitude_bins = num_ops, magnitude, num_magnitude_bins
        bins = np.where(self._has_magnitude, magnitude, -1)
        self.sub_policy_tables = self._tables(list(zip(self._ops.tolist(), bins.tolist())), num_ops)

    @property
    def n_ops(self) -> int:
        return max(self.num_ops, 1)

    def _choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int64[n, num_ops] op ids (-1: Identity) and bins (``magnitude``, -1 without one);
        ``num_ops = 0``: one skipped slot."""
        if self.num_ops == 0:
            return np.full((n, 1), NO_OP), np.full((n, 1), -1)
        op, has_magnitude = self._draw(n, self.num_ops, rng)
        return op, np.where(has_magnitude, self.magnitude, -1)

    def to_dict(self) -> dict:
        data = {"format": FORMAT, "version": 1, "kind": self.kind, "num_ops": self.num_ops, "magnitude": self.magnitude}
        return data | ({"num_magnitude_bins": self.num_magnitude_bins} if self.num_magnitude_bins != 31 else {})

    def __repr__(self):
        bins = f", num_magnitude_bins={self.num_magnitude_bins}" if self.num_magnitude_bins != 31 else ""
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude}{bins})"


class TrivialAugmentWide(_UniformOps):
    """TrivialAugmentWide: each sample applies one op drawn uniformly from the
    ``"trivialaugment_wide"`` space's 13 ops and Identity, at a uniformly drawn bin of
    ``num_magnitude_bins`` (signed ops with a random sign), as torchvision's
    ``TrivialAugmentWide(num_magnitude_bins)``."""

    kind = "trivialaugment_wide"

    def __init__(self, num_magnitude_bins: int = 31):
        super().__init__(_space_with_bins("trivialaugment_wide", num_magnitude_bins))
        self.num_magnitude_bins = num_magnitude_bins
        bins = self.space.n_bins  # an op, then its bin: each op's bins (or its one entry) weigh 1 / ops
        choices = [(o, b if m else -1) for o, m in zip(self._ops.tolist(), self._has_magnitude) for b in range(bins)]
        self.sub_policy_tables = self._tables(choices, 1)

    n_ops = 1

    def _choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int64[n, 1] op ids (-1: Identity) and bins (uniform, -1 without magnitude)."""
        op, has_magnitude = self._draw(n, 1, rng)
        return op, np.where(has_magnitude, rng.integers(0, self.space.n_bins, size=(n, 1)), -1)

    def to_dict(self) -> dict:
        data = {"format": FORMAT, "version": 1, "kind": self.kind}
        return data | ({"num_magnitude_bins": self.num_magnitude_bins} if self.num_magnitude_bins != 31 else {})

    def __repr__(self):
        bins = f"num_magnitude_bins={self.num_magnitude_bins}" if self.num_magnitude_bins != 31 else ""
        return f"TrivialAugmentWide({bins})"


def randaugment(num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31) -> RandAugment:
    """:class:`RandAugment` with torchvision's defaults (2 ops at bin 9 of 31)."""
    return RandAugment(num_ops, magnitude, num_magnitude_bins)


def trivialaugment_wide(num_magnitude_bins: int = 31) -> TrivialAugmentWide:
    """:class:`TrivialAugmentWide` (torchvision's default: 31 bins)."""
    return TrivialAugmentWide(num_magnitude_bins)


STANDARD: dict[str, Any] = {
    "autoaugment": autoaugment,
    "randaugment": randaugment,
    "trivialaugment_wide": trivialaugment_wide,
    "augmix": AugMix,
}
"""Standard policies by name (what ``--policy`` and :func:`resolve` accept)."""

POLICY_FILES: dict[str, Any] = {
    POLICY_FORMAT: Policy,
    AWS_FORMAT: AWSDistribution,
    FORMAT: {
        RandAugment.kind: RandAugment,
        TrivialAugmentWide.kind: TrivialAugmentWide,
        "timm": TimmPolicy,
        AugMix.kind: AugMix,
    },
    SCHEDULE_FORMAT: PolicySchedule,
}
"""JSON ``format`` → the class a policy file loads as (standard policies: by their ``kind``)."""


def _policy_class(data, source: str):
    """The class a policy JSON object loads as, by its ``format`` (and a standard policy's
    ``kind``); PolicyFormatError naming ``source`` otherwise."""
    if not isinstance(data, dict):
        raise PolicyFormatError(f"{source}: a policy must be a JSON object, got {type(data).__name__}")
    fmt = data.get("format")
    kind: Any = POLICY_FILES.get(fmt) if isinstance(fmt, str) else None
    if isinstance(kind, dict):
        kind = kind.get(str(data.get("kind")))
        if kind is None:
            raise PolicyFormatError(f"{source}: unknown standard policy kind {data.get('kind')!r}")
    if kind is None:
        raise PolicyFormatError(f"{source}: 'format' is {fmt!r}; a policy file is one of {', '.join(POLICY_FILES)}")
    return kind


def sampler_from_dict(data: dict, source: str = "<dict>"):
    """The sampler a ``to_dict()`` came from, by its ``format``: a Policy, an
    AWSDistribution or a standard policy (a schedule is not a sampler: refused)."""
    kind = _policy_class(data, source)
    if kind is PolicySchedule:
        raise PolicyFormatError(f"{source}: a policy schedule, not a single policy")
    return jsonio.checked_from_dict(kind.from_dict, data, source)


def load_policy_file(path: str):
    """The :class:`~fastpolicy.policy.Policy`, :class:`~fastpolicy.distribution.AWSDistribution`,
    standard policy or :class:`~fastpolicy.schedule.PolicySchedule` in JSON file ``path``
    (chosen by its ``format`` field); PolicyFormatError names the file otherwise."""
    data = jsonio.read_json(path)
    return jsonio.checked_from_dict(_policy_class(data, str(path)).from_dict, data, str(path))


def _arguments(policy: str, argument: str) -> list:
    """A standard name's ``:a,b`` arguments: whole numbers as ints, other words as strings."""
    if not argument:
        return []
    words = argument.split(",")
    if any(not w for w in words):
        raise ValueError(f"policy {policy!r}: an empty argument after ':'")
    return [int(w) if re.fullmatch(r"-?\d+", w) else w for w in words]


def resolve(policy):
    """The one policy resolver (``fastpolicy train --policy``, the loader's ``policies=``,
    :class:`~fastpolicy.transforms.PolicyAugment`, the bench): a sampler, or a
    :class:`~fastpolicy.schedule.PolicySchedule`, from what a user passes — an object with
    ``choose`` or a schedule (returned as is), a standard policy name (``"autoaugment"``,
    ``"autoaugment:cifar10"``, ``"randaugment"``, ``"randaugment:3,9"`` (num_ops, magnitude),
    ``"trivialaugment_wide"``, ``"augmix"``, ``"augmix:3,3"`` (severity, mixture_width, …)), one of
    timm's strings (``"rand-m9-mstd0.5-inc1"``, ``"v0r"``:
    :mod:`fastpolicy.timm_strings`), or the path of a policy file (:func:`load_policy_file`)."""
    if hasattr(policy, "choose") or isinstance(policy, PolicySchedule):
        return policy
    if isinstance(policy, os.PathLike):
        policy = os.fspath(policy)
    if not isinstance(policy, str):
        raise TypeError(
            f"expected a policy, a schedule, a standard policy name or a JSON path; got {type(policy).__name__}"
        )
    if os.path.exists(policy):  # a file first: 'rand-best.json' is a file, not a timm string
        return load_policy_file(policy)
    name, _, argument = policy.partition(":")
    if name in STANDARD:  # torchvision's names first: "augmix" is torchvision's, "augmix-m5-w4" timm's
        return STANDARD[name](*_arguments(policy, argument))
    if timm_strings.is_timm_string(policy) and os.sep not in policy and not policy.endswith(".json"):
        return timm_strings.parse(policy)
    if not os.path.exists(policy):
        if os.sep in policy or policy.endswith(".json"):  # meant as a file
            raise FileNotFoundError(f"{policy}: no such file")
        raise FileNotFoundError(f"{policy!r} is neither a standard policy ({', '.join(STANDARD)}) nor a policy file")
    return load_policy_file(policy)
