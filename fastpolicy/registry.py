"""The op registry: one :class:`OpSpec` per op, the only list of ops in fastpolicy.

Search spaces, policies, backends, docs and tests all iterate over :data:`OPS`.
An op's *value* is its parameter in physical units (see :mod:`fastpolicy.magnitude`);
each search space that contains the op gives its own bin→value :class:`Magnitude`
(:meth:`fastpolicy.spaces.SearchSpace.value` turns a bin into a value). The search spaces
are derived from this module, which imports none of them.
Implementations (``"dali"``, ``"kernels"``: :data:`IMPLEMENTATIONS`) attach by op name with
:func:`register_backend`; the NumPy ``reference`` is the specification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .magnitude import Magnitude
from .reference import color, geometry, special

KINDS = ("affine", "lut", "blend", "special")
"""``affine``: a 2×3 matrix per sample; ``lut``: a uint8[C, 256] table per sample;
``blend``: a mix with a derived image (grey version, smoothed image); ``special``:
needs more than image and value (a position, a partner)."""


@dataclass(frozen=True)
class Tolerance:
    """How far the reference may be from PIL: at most ``max_abs`` grey levels, on at most
    a ``fraction`` of the values (0, 0: bit-exact)."""

    max_abs: int = 0
    fraction: float = 0.0


@dataclass(frozen=True)
class OpSpec:
    """One op, everything about it.

    Attributes:
        name: AutoAugment's name ("ShearX", ...).
        kind: one of :data:`KINDS`.
        reference: ``reference(image, value, center=None, other=None)`` → image, the
            NumPy specification (uint8 HWC, C = 1 or 3; returns a new array).
        magnitudes: search-space name → :class:`Magnitude` (None: the op takes no
            magnitude). An op belongs to exactly the spaces named here.
        stats: per-image statistic the op needs before it can be applied: None,
            ``"minmax"``, ``"histogram"`` or ``"mean"``.
        needs: extra per-sample input: None, ``"center"`` (a position, Cutout) or
            ``"partner"`` (another image of the batch, SamplePairing).
        tolerance: the tested bound of ``reference`` against PIL.
        identity: the value at which the op leaves an image unchanged (0 for geometric ops,
            Cutout and SamplePairing; 1 for the enhance blends; 256 for Solarize; 8 bits for
            Posterize); a moderate magnitude range scales values towards it.
        doc: one line for the docs.
    """

    name: str
    kind: str
    reference: Callable
    magnitudes: Mapping[str, Magnitude | None]
    stats: str | None = None
    needs: str | None = None
    tolerance: Tolerance = Tolerance()
    identity: float = 0.0
    doc: str = ""
    backends: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> int:
        """Position in :data:`OPS`; the op id in per-sample arrays."""
        return OP_NAMES.index(self.name)

    def magnitude(self, space: str) -> Magnitude | None:
        """The bin→value mapping of this op in ``space`` (None: no magnitude)."""
        if space not in self.magnitudes:
            raise KeyError(f"op {self.name!r} is not in search space {space!r}")
        return self.magnitudes[space]

    @property
    def integer(self) -> bool:
        """True if the op's values are whole numbers (Posterize's bits)."""
        return any(m is not None and m.integer for m in self.magnitudes.values())

    @property
    def signed(self) -> bool:
        """True if any space draws a random sign for this op."""
        return any(m is not None and m.signed for m in self.magnitudes.values())


def _spaces(
    magnitude: Magnitude | None,
    standard: Magnitude | None = None,
    wide: Magnitude | None = None,
    randaugment: bool = True,
    enhance: bool = False,
    dali: Magnitude | None = None,
) -> dict:
    """The op's magnitude in every space: the two papers' (``magnitude``; enhance ops differ,
    see :data:`_ENHANCE`), the standard policies' (torchvision's ranges: ``standard`` for
    AutoAugment and RandAugment, ``wide`` for TrivialAugmentWide; default ``magnitude``) and
    DALI's AutoAugment suites' (``dali``, 11 bins, given for ops with a magnitude)."""
    standard = magnitude if standard is None else standard
    spaces: dict[str, Magnitude | None] = dict(_ENHANCE) if enhance else {"adversarial": magnitude, "aws": magnitude}
    spaces["autoaugment"] = standard
    if randaugment:
        spaces["randaugment"] = standard
        spaces["trivialaugment_wide"] = standard if wide is None else wide
    spaces["dali"] = dali
    return spaces


_SHEAR = Magnitude(0.0, 0.3, signed=True)
_TRANSLATE = Magnitude(0.0, 150 / 331, signed=True)
_ENHANCE = {
    # AutoAugment: factor 0.1 → 1.9 over the bins, no sign.
    "adversarial": Magnitude(0.1, 1.9),
    # AWS: 1 ± m with m 0 → 0.9 and a random sign (bins 3, 6, 9: 1 ± 0.3, 0.6, 0.9).
    "aws": Magnitude(0.0, 0.9, signed=True, centre=1.0),
}
_ENHANCE_STANDARD = Magnitude(0.0, 0.9, signed=True, centre=1.0)  # torchvision: 1 ± m
_ENHANCE_WIDE = Magnitude(0.0, 0.99, signed=True, centre=1.0)
_SOLARIZE_STANDARD = Magnitude(255.0, 0.0)  # torchvision: 255·linspace(1, 0); the papers' spaces: 256 → 0
_SHEAR_WIDE = Magnitude(0.0, 0.99, signed=True)
# TrivialAugmentWide translates by up to 32 pixels at any size; values here are fractions of
# the side, so 32/224 (the same at 224², the size it was tuned at).
_TRANSLATE_WIDE = Magnitude(0.0, 32 / 224, signed=True)
# DALI's AutoAugment suites (``nvidia.dali.auto_aug.auto_augment``, 11 bins): enhance factors
# 0.1 → 1.9 unsigned, Solarize's threshold 0 → 256 (rising), Posterize keeps round(0 → 4) bits
# but at least 1, translations as a fraction of the side 0 → 1 (DALI's ``shape=`` form).
_ENHANCE_DALI = Magnitude(0.1, 1.9)
_TRANSLATE_DALI = Magnitude(0.0, 1.0, signed=True)
_ENHANCE_SPACES = _spaces(None, _ENHANCE_STANDARD, wide=_ENHANCE_WIDE, enhance=True, dali=_ENHANCE_DALI)
_EXACT = Tolerance()

_SPECS = (
    OpSpec(
        "ShearX",
        "affine",
        geometry.geometric(geometry.shear_x),
        _spaces(_SHEAR, wide=_SHEAR_WIDE, dali=_SHEAR),
        doc="x += value·y about the top-left corner; value ±0.3",
    ),
    OpSpec(
        "ShearY",
        "affine",
        geometry.geometric(geometry.shear_y),
        _spaces(_SHEAR, wide=_SHEAR_WIDE, dali=_SHEAR),
        doc="y += value·x; value ±0.3",
    ),
    OpSpec(
        "TranslateX",
        "affine",
        geometry.geometric(geometry.translate_x),
        _spaces(_TRANSLATE, wide=_TRANSLATE_WIDE, dali=_TRANSLATE_DALI),
        doc="shift by value × width; value ±150/331",
    ),
    OpSpec(
        "TranslateY",
        "affine",
        geometry.geometric(geometry.translate_y),
        _spaces(_TRANSLATE, wide=_TRANSLATE_WIDE, dali=_TRANSLATE_DALI),
        doc="shift by value × height; value ±150/331",
    ),
    OpSpec(
        "Rotate",
        "affine",
        geometry.geometric(geometry.rotate),
        _spaces(
            Magnitude(0.0, 30.0, signed=True),
            wide=Magnitude(0.0, 135.0, signed=True),
            dali=Magnitude(0.0, 30.0, signed=True),
        ),
        doc="rotate about the centre by value degrees; ±30",
    ),
    OpSpec(
        "AutoContrast",
        "lut",
        color.lookup(color.autocontrast_lut),
        _spaces(None),
        stats="minmax",
        doc="stretch each channel's [min, max] to [0, 255]",
    ),
    OpSpec("Invert", "lut", color.lookup(color.invert_lut), _spaces(None, randaugment=False), doc="255 − v"),
    OpSpec(
        "Equalize",
        "lut",
        color.lookup(color.equalize_lut),
        _spaces(None),
        stats="histogram",
        doc="PIL's per-channel histogram equalization",
    ),
    OpSpec(
        "Solarize",
        "lut",
        color.lookup(color.solarize_lut),
        _spaces(Magnitude(256.0, 0.0), _SOLARIZE_STANDARD, dali=Magnitude(0.0, 256.0)),
        identity=256.0,
        doc="invert values ≥ threshold; threshold 256 → 0",
    ),
    OpSpec(
        "Posterize",
        "lut",
        color.lookup(color.posterize_lut),
        _spaces(
            Magnitude(8.0, 4.0, integer=True),
            wide=Magnitude(8.0, 2.0, integer=True),
            dali=Magnitude(0.0, 4.0, integer=True, floor=1.0),
        ),
        identity=8.0,
        doc="keep the top value bits; 8 → 4",
    ),
    OpSpec(
        "Contrast",
        "lut",
        color.lookup(color.contrast_lut),
        _ENHANCE_SPACES,
        stats="mean",
        identity=1.0,
        doc="blend with the mean grey level by factor value",
    ),
    OpSpec(
        "Color",
        "blend",
        color.color,
        _ENHANCE_SPACES,
        identity=1.0,
        doc="blend with the grey (L) image by factor value",
    ),
    OpSpec(
        "Brightness",
        "lut",
        color.lookup(color.brightness_lut),
        _ENHANCE_SPACES,
        identity=1.0,
        doc="blend with black by factor value",
    ),
    OpSpec(
        "Sharpness",
        "blend",
        color.sharpness,
        _ENHANCE_SPACES,
        identity=1.0,
        doc="blend with the 3×3 SMOOTH-filtered image by factor value",
    ),
    OpSpec(
        "Cutout",
        "special",
        special.cutout,
        {"adversarial": Magnitude(0.0, 0.2)},
        needs="center",
        doc="grey (128) square of side value × the shorter side; value 0 → 0.2",
    ),
    OpSpec(
        "SamplePairing",
        "special",
        special.sample_pairing,
        {"adversarial": Magnitude(0.0, 0.4)},
        needs="partner",
        doc="blend with another image of the batch, weight value 0 → 0.4",
    ),
    # After the papers' 16, so their op ids (kept in checkpoints and policy files) stay.
    OpSpec(
        "SolarizeAdd",
        "lut",
        color.lookup(color.solarize_add_lut),
        {"timm": Magnitude(0.0, 110.0, integer=True)},
        doc="timm's: add value to levels below 128 (clipped at 255); value 0 → 110",
    ),
)

OP_NAMES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
"""Op names in registry order (= op ids)."""

OPS: Mapping[str, OpSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
"""The registry: op name → :class:`OpSpec`, in a fixed order."""

IMPLEMENTATIONS = ("dali", "kernels")
"""The op implementations that attach to registry ops with :func:`register_backend` (into
``OpSpec.backends``): ``"dali"``, DALI operators; ``"kernels"``, the device functions of
``kernels/``, which the ``cupy``, ``native`` and ``emulated`` stages all run. Not the
policy-stage backends (:func:`fastpolicy.backends.stage.make_stage`) that use them."""


def get_op(name: str) -> OpSpec:
    """The registry entry for ``name``; a clear error lists the known names otherwise."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OP_NAMES)}") from None


def op_by_id(op_id: int) -> OpSpec:
    """The registry entry with id ``op_id`` (0 ≤ id < len(OPS))."""
    if not 0 <= int(op_id) < len(OP_NAMES):
        raise IndexError(f"op id {op_id} out of range [0, {len(OP_NAMES)})")
    return OPS[OP_NAMES[int(op_id)]]


def register_backend(backend: str, name: str):
    """Decorator attaching ``fn`` as op ``name``'s implementation for ``backend``; a second
    registration of the same op and backend raises (it would silently replace the first)."""
    if backend not in IMPLEMENTATIONS:
        raise ValueError(f"unknown op implementation {backend!r}; known: {IMPLEMENTATIONS}")
    spec = get_op(name)

    def attach(fn):
        if backend in spec.backends and spec.backends[backend] != fn:
            raise ValueError(
                f"op {name!r} already has a {backend!r} implementation "
                f"({getattr(spec.backends[backend], '__name__', spec.backends[backend])!r})"
            )
        spec.backends[backend] = fn
        return fn

    return attach
