"""timm's policy strings: ``rand-m9-mstd0.5-inc1``, ``original``, ``v0r-mstd0.5``, … as samplers.

:func:`parse` turns one of timm's ``--aa`` strings into a :class:`TimmPolicy`, a sampler the
loader, :class:`~fastpolicy.transforms.PolicyAugment`, ``--policy`` and config files take
(through :func:`fastpolicy.policies.resolve`). Grammar (timm's, ``-``-separated parts, any
order after the first)::

    rand[-m{M}][-n{N}][-p{P}][-mstd{S}][-mmax{X}][-inc{0|1}][-t{weights|3a|3aw}]
    {original|originalr|v0|v0r|3a}[-mstd{S}]
    augmix[-m{M}][-w{W}][-d{D}][-a{A}][-mstd{S}]

``rand``: each image applies ``N`` (2) layers, each one of the ops drawn uniformly with
replacement (``tweights``: timm's weights, without replacement), applied with probability
``P`` (0.5), at magnitude level ``M`` (10) of 10 (``t3a``: timm's three ops of DeiT III's
3-Augment, uniformly; ``t3aw``: its weighted set, without replacement). ``mstd``: the level is drawn from a normal
of mean ``M`` and deviation ``S`` per application (``S`` > 100: uniform in [0, M]), then
clipped to [0, ``mmax``] (10). ``inc1``: the ops whose strength grows with the level
(``PosterizeIncreasing``, ``SolarizeIncreasing``, ``*Increasing`` enhance ops). The AutoAugment
names pick one of timm's sub-policy tables (:data:`AA_TABLES`), each op with its probability
and level (``3a``: Solarize, Desaturate or a random GaussianBlur, one per image). A level
becomes an op's value by timm's own laws (:data:`LAWS`, timm's ``LEVEL_TO_ARG``), on the
registry's ops (timm's Desaturate is Color at factor 1 − its level's value).

Where this is not timm, on purpose (``docs/policies.md``):

* geometric ops sample with PIL's NEAREST, as every fastpolicy op does; timm draws bilinear or
  bicubic per op unless its ``hparams`` name an interpolation (``interpolation=NEAREST`` there
  gives fastpolicy's pixels);
* absolute translations (``TranslateX``/``Y`` of the AutoAugment tables) move by
  ``0.045 × level`` of the side, which is timm's ``translate_const`` as ``create_transform`` sets
  it (``0.45 ×`` the shorter training side) — a fraction, so the same at any size;
* the fill is 128 (timm's default ``img_mean``); ``create_transform`` passes the dataset mean
  (124, 116, 104): give PolicyAugment ``fill=`` or the loader its fill for that.

``augmix``: timm's AugMix (:data:`AUGMIX_OPS` in W chains, translations at
:data:`AUGMIX_TRANSLATE` as ``create_transform`` runs it, mixed with timm's arithmetic:
``PolicyParams.mix_blend``; :mod:`fastpolicy.augmix` applies it). Refused by name: its ``b1``
(blended) mode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from . import jsonio
from .jsonio import PolicyFormatError
from .params import PolicyParams
from .registry import OPS
from .spaces import get_space

LEVEL_DENOM = 10.0
"""timm's ``_LEVEL_DENOM``: level ``M`` is ``M / 10`` of each op's range."""

FILL = 128
"""timm's default fill (``_FILL``), per channel."""


def _signed(rng: np.random.Generator, magnitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """timm's ``_randomly_negate``: −v with probability ½; returns (value, sign)."""
    sign = np.where(rng.random(magnitude.shape) > 0.5, -1, 1)
    return sign * magnitude, sign


def _unsigned(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values, np.ones(values.shape, np.int64)


def _enhance_increasing(level, rng):
    value, sign = _signed(rng, (level / LEVEL_DENOM) * 0.9)
    return np.maximum(0.1, 1.0 + value), sign


def _trunc(x):
    return np.trunc(x)


def _minmax(level: np.ndarray, low: float, high: float) -> np.ndarray:
    """timm's ``_minmax_level_to_arg``: ``low + (high − low) · level / 10``, clamped to [low, high]."""
    return np.clip(low + (high - low) * (level / LEVEL_DENOM), low, high)


def _blur_rand(level: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """timm's ``gaussian_blur_rand``: a deviation drawn uniformly in [0.1, 2 · level / 10] per image
    (Python's ``random.uniform(a, b)``: ``a + (b − a) · U``)."""
    top = 2.0 * _minmax(level, 0.0, 1.0)
    return _unsigned(0.1 + (top - 0.1) * rng.random(level.shape))


Law = Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]

LAWS: dict[str, tuple[str, Law | None]] = {
    # timm op name: (registry op, level → (value, sign)); the expressions are timm's, in its order.
    "AutoContrast": ("AutoContrast", None),
    "Equalize": ("Equalize", None),
    "Invert": ("Invert", None),
    "Rotate": ("Rotate", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 30.0)),
    "Posterize": ("Posterize", lambda level, rng: _unsigned(np.clip(_trunc((level / LEVEL_DENOM) * 4), 0, 8))),
    "PosterizeIncreasing": (
        "Posterize",
        lambda level, rng: _unsigned(np.clip(4 - _trunc((level / LEVEL_DENOM) * 4), 0, 8)),
    ),
    "PosterizeOriginal": (
        "Posterize",
        lambda level, rng: _unsigned(np.clip(_trunc((level / LEVEL_DENOM) * 4) + 4, 0, 8)),
    ),
    "Solarize": ("Solarize", lambda level, rng: _unsigned(np.minimum(256, _trunc((level / LEVEL_DENOM) * 256)))),
    "SolarizeIncreasing": (
        "Solarize",
        lambda level, rng: _unsigned(256 - np.minimum(256, _trunc((level / LEVEL_DENOM) * 256))),
    ),
    "SolarizeAdd": ("SolarizeAdd", lambda level, rng: _unsigned(np.minimum(128, _trunc((level / LEVEL_DENOM) * 110)))),
    **{
        name: (name, lambda level, rng: _unsigned((level / LEVEL_DENOM) * 1.8 + 0.1))
        for name in ("Color", "Contrast", "Brightness", "Sharpness")
    },
    **{f"{name}Increasing": (name, _enhance_increasing) for name in ("Color", "Contrast", "Brightness", "Sharpness")},
    "ShearX": ("ShearX", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 0.3)),
    "ShearY": ("ShearY", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 0.3)),
    # translate_pct 0.45 (timm's default); the absolute ones as create_transform sets translate_const
    "TranslateXRel": ("TranslateX", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 0.45)),
    "TranslateYRel": ("TranslateY", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 0.45)),
    "TranslateX": ("TranslateX", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 0.45)),
    "TranslateY": ("TranslateY", lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * 0.45)),
    # 3-Augment's: Desaturate is Color at factor min(1, max(0, 1 − arg)), arg 0.5 → 1
    "Desaturate": ("Color", lambda level, rng: _unsigned(np.clip(1.0 - _minmax(level, 0.5, 1.0), 0.0, 1.0))),
    "GaussianBlur": ("GaussianBlur", lambda level, rng: _unsigned(_minmax(level, 0.1, 2.0))),
    "GaussianBlurRand": ("GaussianBlur", _blur_rand),
}
"""timm's op names → the registry op and timm's level → value law (None: no magnitude)."""

AUGMIX_OPS = (
    "AutoContrast", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
    "Equalize", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "ShearX", "ShearY",
    "TranslateXRel", "TranslateYRel",
)  # fmt: skip
"""timm's ``_AUGMIX_TRANSFORMS``: the ops of its AugMix chains."""

AUGMIX_TRANSLATE = 0.3
"""The translation its AugMix strings run with: ``create_transform`` sets ``translate_pct=0.3``
for them (0.45 for the others)."""

AUGMIX_LAWS = LAWS | {
    name: (name[:-3], lambda level, rng: _signed(rng, (level / LEVEL_DENOM) * AUGMIX_TRANSLATE))
    for name in ("TranslateXRel", "TranslateYRel")
}
""":data:`LAWS` as timm's AugMix strings run them (translations at :data:`AUGMIX_TRANSLATE`)."""

RAND_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)  # fmt: skip
"""timm's ``_RAND_TRANSFORMS`` (``inc0``)."""

RAND_INCREASING_OPS = tuple(
    {"Posterize": "PosterizeIncreasing", "Solarize": "SolarizeIncreasing"}.get(
        name, f"{name}Increasing" if name in ("Color", "Contrast", "Brightness", "Sharpness") else name
    )
    for name in RAND_OPS
)
"""timm's ``_RAND_INCREASING_TRANSFORMS`` (``inc1``)."""

RAND_WEIGHTS = {
    "Rotate": 3, "ShearX": 2, "ShearY": 2, "TranslateXRel": 1, "TranslateYRel": 1, "ColorIncreasing": 0.25,
    "SharpnessIncreasing": 0.25, "AutoContrast": 0.25, "SolarizeIncreasing": 0.05, "SolarizeAdd": 0.05,
    "ContrastIncreasing": 0.05, "BrightnessIncreasing": 0.05, "Equalize": 0.05, "PosterizeIncreasing": 0.05,
    "Invert": 0.05,
}  # fmt: skip
"""timm's ``_RAND_WEIGHTED_0`` (``tweights``): ops drawn without replacement by these weights."""

RAND_3A_OPS = ("SolarizeIncreasing", "Desaturate", "GaussianBlur")
"""timm's ``_RAND_3A`` (``t3a``): drawn uniformly, with replacement."""

RAND_3A_WEIGHTS = {
    "SolarizeIncreasing": 6, "Desaturate": 6, "GaussianBlur": 6, "Rotate": 3, "ShearX": 2, "ShearY": 2,
    "PosterizeIncreasing": 1, "AutoContrast": 1, "ColorIncreasing": 1, "SharpnessIncreasing": 1,
    "ContrastIncreasing": 1, "BrightnessIncreasing": 1, "Equalize": 1, "Invert": 1,
}  # fmt: skip
"""timm's ``_RAND_WEIGHTED_3A`` (``t3aw``): ops drawn without replacement by these weights."""

AA_TABLES = {
    "v0": (
        (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
        (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
        (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
        (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
        (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
        (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
        (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
        (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
        (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
        (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
        (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
        (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
        (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
        (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
        (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
        (("Rotate", 1.0, 7), ("TranslateYRel", 0.8, 9)),
        (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
        (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
        (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
        (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
        (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
        (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
        (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
        (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
        (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
    ),
    "v0r": (
        (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
        (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
        (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
        (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
        (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
        (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
        (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
        (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
        (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
        (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
        (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
        (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
        (("PosterizeIncreasing", 0.4, 6), ("AutoContrast", 0.4, 7)),
        (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
        (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
        (("Rotate", 1.0, 7), ("TranslateYRel", 0.8, 9)),
        (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
        (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
        (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
        (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
        (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
        (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
        (("PosterizeIncreasing", 0.8, 2), ("Solarize", 0.6, 10)),
        (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
        (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
    ),
    "original": (
        (("PosterizeOriginal", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
        (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
        (("PosterizeOriginal", 0.6, 7), ("PosterizeOriginal", 0.6, 6)),
        (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
        (("PosterizeOriginal", 0.8, 5), ("Equalize", 1.0, 2)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, 8), ("PosterizeOriginal", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
        (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
        (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
        (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
        (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
        (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    ),
    "originalr": (
        (("PosterizeIncreasing", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
        (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
        (("PosterizeIncreasing", 0.6, 7), ("PosterizeIncreasing", 0.6, 6)),
        (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
        (("PosterizeIncreasing", 0.8, 5), ("Equalize", 1.0, 2)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, 8), ("PosterizeIncreasing", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
        (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
        (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
        (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
        (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
        (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    ),
    "3a": (
        (("Solarize", 1.0, 5),),
        (("Desaturate", 1.0, 10),),
        (("GaussianBlurRand", 1.0, 10),),
    ),
}
"""timm's AutoAugment tables: sub-policies of (timm op name, probability, level of 10); ``3a``
is DeiT III's 3-Augment (one op per image)."""

GRAMMAR = (
    "rand[-m{M}][-n{N}][-p{P}][-mstd{S}][-mmax{X}][-inc{0|1}][-t{weights|3a|3aw}]"
    " | {original|originalr|v0|v0r|3a}[-mstd{S}] | augmix[-m{M}][-w{W}][-d{D}][-a{A}][-mstd{S}]"
)
"""The strings :func:`parse` takes (timm's ``--aa``)."""

PREFIXES = ("rand", "augmix", *AA_TABLES)
"""First parts that make a string timm's (what :func:`fastpolicy.policies.resolve` hands here)."""

FORMAT_KIND = "timm"
"""The ``kind`` of a timm policy in a standard-policy JSON file (``{"string": "rand-m9"}``)."""


def is_timm_string(text: str) -> bool:
    """Whether ``text`` starts like one of timm's policy strings (its first ``-`` part)."""
    return text.split("-", 1)[0] in PREFIXES


class TimmPolicy(jsonio.JsonFile):
    """A timm policy string as a sampler (:mod:`fastpolicy.sampling`): it draws its ops, levels
    and signs per image and gives each op timm's value for its level (``draws_values``: the
    loader and PolicyAugment take its :meth:`sample` as it is).

    Attributes:
        string: the string as given (canonical parts are not rewritten).
        ops: tuple of timm op names an image draws from (``rand``), or None (tables).
        table: the AutoAugment table, or None (``rand``).
        num_layers, prob, magnitude, magnitude_std, magnitude_max: timm's settings.
        weights: float64[ops] choice weights (``tweights``, ``t3aw``), or None (uniform, with
            replacement).
    """

    draws_values = True
    default_fill = FILL

    def __init__(self, string: str):
        if not isinstance(string, str):
            raise TypeError(f"a timm policy string must be a str, got {type(string).__name__}")
        self.string = string
        self.space = get_space("timm")
        self.ops: tuple[str, ...] | None = None
        self.table = None
        self.weights: np.ndarray | None = None
        self.num_layers, self.prob, self.magnitude = 2, 0.5, LEVEL_DENOM
        self.magnitude_std, self.magnitude_max = 0.0, None
        self.augmix: dict | None = None  # timm's AugMix: width, depth, alpha
        name, *parts = string.split("-")
        keys = [part if part.startswith("t") else re.sub(r"\d.*", "", part) for part in parts]
        twice = sorted({k for k in keys if keys.count(k) > 1 and k})
        if twice:
            raise ValueError(f"timm policy {string!r}: part {twice[0]!r} given twice (timm would keep one silently)")
        sets = [part for part in parts if part.startswith("t")]
        if len(sets) > 1:
            raise ValueError(
                f"timm policy {string!r}: op sets {sets[0]!r} and {sets[1]!r} both given (timm would keep the first "
                "silently)"
            )
        if name == "augmix":
            self._augmix(parts)
            return
        if name == "rand":
            self._rand(parts)
        elif name in AA_TABLES:
            self.table = AA_TABLES[name]
            self.prob = 1.0
            for part in parts:
                key, value = _split(string, part)
                if key != "mstd":
                    raise _unknown(string, part)
                self.magnitude_std = _number(string, part, value, float, 0)
        else:
            raise ValueError(f"{string!r} is not one of timm's policy strings; timm's grammar: {GRAMMAR}")

    def _rand(self, parts: list[str]) -> None:
        increasing, transforms = False, None
        for part in parts:
            if part.startswith("t"):  # timm: an op set by name
                transforms = part[1:]
                continue
            key, value = _split(self.string, part)
            if key == "m":
                self.magnitude = float(_number(self.string, part, value, int, 0))
            elif key == "n":
                self.num_layers = _number(self.string, part, value, int, 0)
            elif key == "p":
                self.prob = _number(self.string, part, value, float, 0, 1)
            elif key == "mstd":
                std = _number(self.string, part, value, float, 0)
                self.magnitude_std = math.inf if std > 100 else std
            elif key == "mmax":
                self.magnitude_max = _number(self.string, part, value, int, 0)
            elif key == "inc":
                increasing = bool(_number(self.string, part, value, int, 0, 1))
            else:
                raise _unknown(self.string, part)
        if transforms is None:
            self.ops = RAND_INCREASING_OPS if increasing else RAND_OPS
        elif transforms == "3a":
            self.ops = RAND_3A_OPS
        elif transforms in ("weights", "3aw"):
            table = RAND_WEIGHTS if transforms == "weights" else RAND_3A_WEIGHTS
            self.ops = tuple(table)
            weights = np.array(list(table.values()), dtype=np.float64)
            self.weights = weights / weights.sum()
            if self.num_layers > len(self.ops):
                raise ValueError(
                    f"timm policy {self.string!r}: n{self.num_layers} layers without replacement "
                    f"from {len(self.ops)} weighted ops"
                )
        else:
            raise ValueError(
                f"timm policy {self.string!r}: unknown op set 't{transforms}' (timm's: tweights, t3a, t3aw)"
            )

    def _augmix(self, parts: list[str]) -> None:
        """timm's ``augment_and_mix_transform``: ``m`` severity (3), ``w`` chains (3), ``d`` ops per
        chain (−1: 1–3 drawn), ``a`` Dirichlet/Beta alpha (1), ``mstd`` level noise (default:
        uniform in [0, m]); ``b1`` (timm's untested blended mode) refused by name."""
        settings = {"width": 3, "depth": -1, "alpha": 1.0}
        self.magnitude, self.magnitude_std, self.prob, self.ops = 3.0, math.inf, 1.0, AUGMIX_OPS
        for part in parts:
            key, value = _split(self.string, part)
            if key == "m":
                self.magnitude = float(_number(self.string, part, value, int, 0))
            elif key == "w":
                settings["width"] = _number(self.string, part, value, int, 1)
            elif key == "d":
                settings["depth"] = _number(self.string, part, value, int, -(2**31))
            elif key == "a":
                settings["alpha"] = _number(self.string, part, value, float, 0)
                if not 0 < settings["alpha"] < math.inf:
                    raise ValueError(f"timm policy {self.string!r}: {part!r} must be a number > 0")
            elif key == "b":
                if _number(self.string, part, value, int, 0, 1):
                    raise ValueError(
                        f"timm policy {self.string!r}: 'b1' is timm's blended AugMix, which its author calls "
                        "untested and which differs by more than rounding; it is not taken"
                    )
            elif key == "mstd":
                self.magnitude_std = _number(self.string, part, value, float, 0)  # (no > 100 rule here, as timm)
            else:
                raise _unknown(self.string, part)
        self.augmix = settings

    @property
    def mixes(self) -> bool:
        """Whether this is timm's AugMix (chains and a mix: :mod:`fastpolicy.augmix`)."""
        return self.augmix is not None

    @property
    def mix_shape(self) -> tuple[int, int, bool]:
        """AugMix: (chains, slots per chain, timm's blend), what AugMix policies of one batch share."""
        if self.augmix is None:
            raise AttributeError("mix_shape: only timm's AugMix has chains")
        return self.augmix["width"], self.depth, True

    @property
    def depth(self) -> int:
        """AugMix: slots per chain (``d``, or 3 where drawn)."""
        if self.augmix is None:
            raise AttributeError("depth: only timm's AugMix has chains")
        return self.augmix["depth"] if self.augmix["depth"] > 0 else 3

    @property
    def n_ops(self) -> int:
        """Op slots per image: the layers (``rand``), the longest sub-policy, or AugMix's chains."""
        if self.augmix is not None:
            return self.augmix["width"] * self.depth
        return max(1, self.num_layers) if self.table is None else max(len(sub) for sub in self.table)

    def choose(self, n: int, rng: np.random.Generator):
        raise TypeError("a timm policy draws its values itself: use sample() (draws_values)")

    def _levels(self, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """timm's ``AugmentOp`` level: ``base`` with its noise, clipped to [0, mmax or 10]."""
        level = base.astype(np.float64)
        if self.magnitude_std == math.inf:
            level = rng.uniform(0.0, 1.0, base.shape) * level
        elif self.magnitude_std > 0:
            level = rng.normal(level, self.magnitude_std)
        return np.clip(level, 0.0, self.magnitude_max or LEVEL_DENOM)

    def draw(self, n: int, rng: np.random.Generator):
        """timm names (object[n, K], None: skipped) and base levels (float64[n, K]) per image."""
        k = self.n_ops
        names = np.full((n, k), None, dtype=object)
        level = np.zeros((n, k))
        if self.table is None:
            ops = self.ops or ()
            if self.num_layers == 0:
                return names, level
            if self.weights is None:
                pick = rng.integers(0, len(ops), size=(n, k))
            else:  # without replacement, by weight: the k smallest exponential races
                race = rng.exponential(size=(n, len(ops))) / self.weights
                pick = np.argsort(race, axis=1)[:, :k]
            applied = rng.random((n, k)) <= self.prob
            names[applied] = np.array(ops, dtype=object)[pick][applied]
            level[:] = self.magnitude
            return names, level
        chosen = rng.integers(0, len(self.table), size=n)
        keep = rng.random((n, k))
        for i, sub in enumerate(chosen):
            for slot, (name, prob, lvl) in enumerate(self.table[sub]):
                if keep[i, slot] <= prob:
                    names[i, slot], level[i, slot] = name, lvl
        return names, level

    def sample(self, n: int, rng: np.random.Generator, policy_index: int = 0, version: int = 0) -> PolicyParams:
        """Parameters for ``n`` images: ops and levels (:meth:`draw`), each level's noise, then
        each op's value and sign by its law (:data:`LAWS`); AugMix: its chains so, then the
        weights of timm's mix (``mix_blend``: ``w ~ Dirichlet(a)``, then ``m ~ Beta(a, a)``)."""
        if self.augmix is not None:
            return self._sample_augmix(n, rng, policy_index, version)
        names, base = self.draw(n, rng)
        return self._values(names, base, rng, n, self.n_ops, policy_index, version)

    def _sample_augmix(self, n: int, rng: np.random.Generator, policy_index: int, version: int) -> PolicyParams:
        """timm's AugMix: per image W chains of ops drawn uniformly with replacement (1–3 of them
        where ``d`` ≤ 0), each at level ``m`` with its noise; then the mix's weights."""
        settings = self.augmix
        assert settings is not None  # (sample() calls this for AugMix strings only)
        width, depth, alpha = settings["width"], self.depth, settings["alpha"]
        ops = np.array(self.ops, dtype=object)
        names = ops[rng.integers(0, len(ops), size=(n, width, depth))]
        if settings["depth"] <= 0:
            drawn = rng.integers(1, 4, size=(n, width))
            names[np.arange(depth) >= drawn[..., None]] = None
        base = np.full((n, width * depth), self.magnitude)
        params = self._values(
            names.reshape(n, width * depth), base, rng, n, width * depth, policy_index, version, AUGMIX_LAWS
        )
        weights = rng.dirichlet([alpha] * width, size=n).astype(np.float32)
        m = rng.beta(alpha, alpha, size=n).astype(np.float32)
        mix = np.concatenate([m[:, None], weights], axis=1)
        arrays = params.arrays() | {"partner": np.zeros((n, width * depth), np.int32)}  # no AugMix op pairs
        return PolicyParams(**arrays, version=version, mix=mix, chain_slots=depth, mix_blend=True)

    def _values(self, names, base, rng, n: int, k: int, policy_index: int, version: int, laws=None) -> PolicyParams:
        """PolicyParams of timm op ``names`` (object[n, k], None: skipped) at ``base`` levels with
        their noise, each op's value and sign by its law (``laws``, default :data:`LAWS`)."""
        laws = LAWS if laws is None else laws
        level = self._levels(base, rng)
        fields = PolicyParams.skipped_fields(n, k)
        op, value, sign, bins = fields["op"], fields["value"], fields["sign"], fields["bin"]
        for name in {x for x in names.ravel() if x is not None}:
            where = names == name
            target, law = laws[name]
            op[where] = OPS[target].id
            if law is not None:
                v, s = law(level[where], rng)
                value[where], sign[where] = v, s
                bins[where] = np.clip(np.rint(level[where]), 0, 127)
        return PolicyParams(**fields, policy=np.full(n, policy_index), version=version)

    def to_dict(self) -> dict:
        return {"format": jsonio.STANDARD_FORMAT, "version": 1, "kind": FORMAT_KIND, "string": self.string}

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        jsonio.check_header(data, jsonio.STANDARD_FORMAT, source)
        extra = set(data) - {"format", "version", "kind", "string"}
        if data.get("kind") != FORMAT_KIND or extra or not isinstance(data.get("string"), str):
            raise PolicyFormatError(f"{source}: a timm policy is {{'kind': 'timm', 'string': '…'}}, got {data!r}")
        try:
            return cls(data["string"])
        except ValueError as err:
            raise PolicyFormatError(f"{source}: {err}") from None

    def __eq__(self, other):
        return type(self) is type(other) and self.string == other.string

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        return f"TimmPolicy({self.string!r})"


def parse(string: str) -> TimmPolicy:
    """One of timm's policy strings (:data:`GRAMMAR`) as a :class:`TimmPolicy`; ValueError naming
    the part that is not timm's, with the grammar."""
    return TimmPolicy(string)


def _split(string: str, part: str) -> tuple[str, str]:
    match = re.fullmatch(r"([a-z]+)(\d.*)", part)
    if match is None:
        raise _unknown(string, part)
    return match.group(1), match.group(2)


def _unknown(string: str, part: str) -> ValueError:
    return ValueError(f"timm policy {string!r}: unknown part {part!r}; timm's grammar: {GRAMMAR}")


def _number(string: str, part: str, text: str, kind, low, high=None):
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"timm policy {string!r}: {part!r} needs a {kind.__name__} after its key") from None
    if value < low or (high is not None and value > high) or value != value:
        bound = f"in [{low}, {high}]" if high is not None else f"≥ {low}"
        raise ValueError(f"timm policy {string!r}: {part!r} must be {bound}")
    return value


for _name, (_target, _law) in LAWS.items():
    OPS[_target]  # every law names a registry op (a KeyError here at import otherwise)
for _table in AA_TABLES.values():
    for _sub in _table:
        for _entry in _sub:
            if _entry[0] not in LAWS:
                raise KeyError(f"timm table op {_entry[0]!r} has no law")

__all__ = ["AA_TABLES", "GRAMMAR", "LAWS", "RAND_3A_OPS", "RAND_OPS", "TimmPolicy", "is_timm_string", "parse"]
