"""The op registry: one :class:`OpSpec` per op, the only list of ops in fastpolicy.

Search spaces, policies, backends, docs and tests all iterate over :data:`OPS`.
An op's *value* is its parameter in physical units (see :mod:`fastpolicy.magnitude`);
each search space that contains the op gives its own bin→value :class:`Magnitude`
(:meth:`fastpolicy.spaces.SearchSpace.value` turns a bin into a value). The search spaces
are derived from this module, which imports none of them.
Implementations (``"dali"``, ``"kernels"``: :data:`IMPLEMENTATIONS`) attach by op name with
:func:`register_backend`; the NumPy ``reference`` is the specification. :func:`register_op`
adds a user's op after the built-in ones (:data:`BUILTIN_OPS`); modules that keep per-op
tables refresh them through :func:`on_change`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .magnitude import SPACE_BINS, Magnitude
from .reference import blur, color, geometry, special

KINDS = ("affine", "lut", "blend", "filter", "special")
"""``affine``: a 2×3 matrix per sample; ``lut``: a uint8[C, 256] table per sample;
``blend``: a mix with a derived image (grey version, smoothed image); ``filter``: passes over
the whole image, each rounded (GaussianBlur's box passes); ``special``: needs more than image
and value (a position, a partner)."""


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
    augmix: Magnitude | bool | None = False,
) -> dict:
    """The op's magnitude in every space: the two papers' (``magnitude``; enhance ops differ,
    see :data:`_ENHANCE`), the standard policies' (torchvision's ranges: ``standard`` for
    AutoAugment and RandAugment, ``wide`` for TrivialAugmentWide; default ``magnitude``) and
    DALI's AutoAugment suites' (``dali``, 11 bins, given for ops with a magnitude) and AugMix's
    (``augmix``, torchvision's ranges over 10 bins; False: not an AugMix op, None: one without a
    magnitude)."""
    standard = magnitude if standard is None else standard
    spaces: dict[str, Magnitude | None] = dict(_ENHANCE) if enhance else {"adversarial": magnitude, "aws": magnitude}
    spaces["autoaugment"] = standard
    if randaugment:
        spaces["randaugment"] = standard
        spaces["trivialaugment_wide"] = standard if wide is None else wide
    spaces["dali"] = dali
    if not isinstance(augmix, bool):  # False: not an AugMix op
        spaces["augmix"] = augmix
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
_ENHANCE_SPACES = _spaces(
    None, _ENHANCE_STANDARD, wide=_ENHANCE_WIDE, enhance=True, dali=_ENHANCE_DALI, augmix=_ENHANCE_STANDARD
)
# AugMix (torchvision's AugMix, 10 bins): translations by a third of the side, Posterize 4 → 0 bits.
_TRANSLATE_AUGMIX = Magnitude(0.0, 1 / 3, signed=True)
_EXACT = Tolerance()

_SPECS = (
    OpSpec(
        "ShearX",
        "affine",
        geometry.geometric(geometry.shear_x),
        _spaces(_SHEAR, wide=_SHEAR_WIDE, dali=_SHEAR, augmix=_SHEAR),
        doc="x += value·y about the top-left corner; value ±0.3",
    ),
    OpSpec(
        "ShearY",
        "affine",
        geometry.geometric(geometry.shear_y),
        _spaces(_SHEAR, wide=_SHEAR_WIDE, dali=_SHEAR, augmix=_SHEAR),
        doc="y += value·x; value ±0.3",
    ),
    OpSpec(
        "TranslateX",
        "affine",
        geometry.geometric(geometry.translate_x),
        _spaces(_TRANSLATE, wide=_TRANSLATE_WIDE, dali=_TRANSLATE_DALI, augmix=_TRANSLATE_AUGMIX),
        doc="shift by value × width; value ±150/331",
    ),
    OpSpec(
        "TranslateY",
        "affine",
        geometry.geometric(geometry.translate_y),
        _spaces(_TRANSLATE, wide=_TRANSLATE_WIDE, dali=_TRANSLATE_DALI, augmix=_TRANSLATE_AUGMIX),
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
            augmix=Magnitude(0.0, 30.0, signed=True),
        ),
        doc="rotate about the centre by value degrees; ±30",
    ),
    OpSpec(
        "AutoContrast",
        "lut",
        color.lookup(color.autocontrast_lut),
        _spaces(None, augmix=None),
        stats="minmax",
        doc="stretch each channel's [min, max] to [0, 255]",
    ),
    OpSpec("Invert", "lut", color.lookup(color.invert_lut), _spaces(None, randaugment=False), doc="255 − v"),
    OpSpec(
        "Equalize",
        "lut",
        color.lookup(color.equalize_lut),
        _spaces(None, augmix=None),
        stats="histogram",
        doc="PIL's per-channel histogram equalization",
    ),
    OpSpec(
        "Solarize",
        "lut",
        color.lookup(color.solarize_lut),
        _spaces(Magnitude(256.0, 0.0), _SOLARIZE_STANDARD, dali=Magnitude(0.0, 256.0), augmix=_SOLARIZE_STANDARD),
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
            augmix=Magnitude(4.0, 0.0, integer=True),
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
    OpSpec(
        "GaussianBlur",
        "filter",
        blur.gaussian_blur,
        {"timm": Magnitude(0.1, 2.0)},
        doc="timm's: PIL's GaussianBlur (three box passes per axis), deviation value pixels; 0.1 → 2.0",
    ),
)

_REGISTRY: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}

BUILTIN_OPS: tuple[str, ...] = tuple(_REGISTRY)
"""The ops fastpolicy ships, in id order; ops added with :func:`register_op` follow them."""


class _OpNames(Sequence):
    """Op names in registry order (= op ids), a live view: it grows with :func:`register_op`."""

    def __init__(self):
        self._names: tuple[str, ...] = tuple(_REGISTRY)
        self._ids: dict[str, int] = {name: i for i, name in enumerate(self._names)}

    def _refresh(self) -> None:
        self._names = tuple(_REGISTRY)
        self._ids = {name: i for i, name in enumerate(self._names)}

    def __getitem__(self, index):
        return self._names[index]

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self):
        return iter(self._names)

    def __contains__(self, name) -> bool:
        return name in self._ids

    def index(self, name, *args) -> int:
        if name not in self._ids:
            raise ValueError(f"{name!r} is not a registered op")
        return self._ids[name]

    def __eq__(self, other) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _OpNames)) else other)

    def __hash__(self):
        return hash(self._names)

    def __repr__(self) -> str:
        return repr(self._names)


OP_NAMES = _OpNames()
"""Op names in registry order (= op ids): a tuple-like live view (``len``, ``[i]``,
``index``), the built-in ops first, then the ones :func:`register_op` adds."""

OPS: Mapping[str, OpSpec] = MappingProxyType(_REGISTRY)
"""The registry: op name → :class:`OpSpec`, in a fixed order (a live read-only view)."""

_LISTENERS: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> Callable[[], None]:
    """Call ``listener()`` whenever an op is registered or removed (modules that cache per-op
    tables clear them); returns it, so it may decorate."""
    _LISTENERS.append(listener)
    return listener


def _changed() -> None:
    OP_NAMES._refresh()
    for listener in list(_LISTENERS):
        listener()


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


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PROBE = (32, 40)
"""(height, width) of the image a new op's functions are tried on when it is registered."""


def _probe_values(magnitudes: Mapping[str, Magnitude | None], n_bins: Mapping[str, int]) -> list[float]:
    """Every value the op's spaces give it (each bin, both signs), or [0.0] without a magnitude."""
    values: set[float] = set()
    for space, magnitude in magnitudes.items():
        if magnitude is not None:
            values.update(float(v) for v in magnitude.table(n_bins[space]).reshape(-1))
    return sorted(values) or [0.0]


def _user_reference(name: str, kind: str, matrix, lut, reference) -> Callable:
    """The reference function of a registered op, from what the user gave."""
    if kind == "affine":
        matrix_fn = lambda value, height, width: tuple(float(v) for v in matrix(value, height, width))  # noqa: E731
        matrix_fn.__name__ = name
        return geometry.geometric(matrix_fn)
    if kind == "lut":

        def table(image: np.ndarray, value: float) -> np.ndarray:
            row = np.asarray(lut(value))
            return np.broadcast_to(row.astype(np.uint8), (image.shape[2], 256))

        table.__name__ = f"{name}_lut"
        table.__doc__ = f"{name}'s table, the same for every channel."
        lookup = color.lookup(table)
        lookup.table = lut  # the user's value → uint8[256], for the kernels' tables
        return lookup

    def op(image: np.ndarray, value: float, **_) -> np.ndarray:
        return reference(image, value)

    op.__name__ = name
    op.__doc__ = reference.__doc__
    return op


def _check_user_op(spec: OpSpec, values: list[float]) -> None:
    """Run the new op's reference on a probe image at every value its spaces give it, RGB and
    grey: ValueError naming the op and the value unless each gives a uint8 image of the
    input's shape (matrices: six finite numbers within PIL's fixed-point range)."""
    height, width = _PROBE
    rng = np.random.default_rng(0)
    for channels in (3, 1):
        image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
        for value in values:
            where = f"register_op({spec.name!r}): at value {value:g}"
            if spec.kind == "affine":
                matrix = spec.reference.matrix(value, height, width)  # type: ignore[attr-defined]  # affine ops'
                if len(matrix) != 6 or not all(math.isfinite(v) for v in matrix):
                    raise ValueError(
                        f"{where}, matrix() must give six finite numbers (a, b, c, d, e, f), got {matrix!r}"
                    )
            if spec.kind == "lut":
                row = np.asarray(spec.reference.table(value))  # type: ignore[attr-defined]  # table ops'
                if row.shape != (256,):
                    raise ValueError(f"{where}, lut() must give 256 whole levels in 0..255, got shape {row.shape}")
                if not (np.all((row >= 0) & (row <= 255)) and np.all(row == np.round(row))):
                    odd = row[(row < 0) | (row > 255) | (row != np.round(row))][0]
                    raise ValueError(f"{where}, lut() must give 256 whole levels in 0..255, got {odd!r}")
            try:
                out = spec.reference(image.copy(), value, center=None, other=image, fill=geometry.FILL)
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
            out = np.asarray(out)
            if out.shape != image.shape or out.dtype != np.uint8:
                raise ValueError(
                    f"{where}, the op must give a uint8 image of the input's shape {image.shape}, "
                    f"got {out.dtype} {out.shape}"
                )


def register_op(
    name: str,
    *,
    matrix: Callable[[float, int, int], Sequence[float]] | None = None,
    lut: Callable[[float], np.ndarray] | None = None,
    reference: Callable[[np.ndarray, float], np.ndarray] | None = None,
    magnitude: Magnitude | tuple[float, float] | None = None,
    signed: bool = False,
    spaces: Iterable[str] | Mapping[str, Magnitude | None] = ("adversarial",),
    identity: float = 0.0,
    doc: str = "",
) -> OpSpec:
    """Add an op to the registry: search spaces, policies, the transform, the loader and every
    stage that can run it see it from then on (its id follows the built-in ops').

    Give the op as exactly one of:

    * ``matrix(value, height, width)`` → ``(a, b, c, d, e, f)``: a geometric op, PIL's affine
      convention (output point → input point, as ``Image.transform``); nearest sampling and the
      fill, like the built-in geometric ops. Runs on every stage (reference, ``pil``, the
      kernels' ``native``/``emulated``/``cupy``, ``dali``; ``dali`` refuses, by name and value,
      a matrix that only scales, whose PIL engine it cannot reproduce); boxes and masks follow it.
    * ``lut(value)`` → uint8[256]: a level table, the same for each channel. Runs on the
      reference, ``pil`` and kernel stages (a table built on the host per value); the ``dali``
      stage refuses it by name.
    * ``reference(image, value)`` → image: any op on a uint8 HWC array (C = 1 or 3), returning
      a new uint8 array of the same shape. Runs on the reference and ``pil`` stages; the kernel
      and DALI stages refuse it by name.

    Args:
        name: a new op name (letters, digits, ``_``; not a registered op's).
        magnitude: the bin → value mapping: a :class:`~fastpolicy.magnitude.Magnitude`, or
            ``(low, high)`` (linear over the space's bins, ``signed`` adds a random sign); None:
            the op takes no value (it is called with 0.0).
        spaces: the search spaces the op joins (``"adversarial"``, ``"aws"``, the standard
            ones), all with ``magnitude``, or a mapping space → its own magnitude.
        identity: the value at which the op leaves an image unchanged (``magnitude_scale``
            moves values towards it).
        doc: one line for the docs.

    Returns:
        the new :class:`OpSpec`. The functions are tried on a probe image at every value the
        op's spaces give it before anything is registered: a failure raises ValueError naming
        the op and the value, and registers nothing. :func:`unregister_op` removes it.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"register_op: an op name is letters, digits and '_', starting with a letter; got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"register_op: op {name!r} is already registered")
    given = {"matrix": matrix, "lut": lut, "reference": reference}
    chosen = [key for key, fn in given.items() if fn is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"register_op({name!r}): give exactly one of matrix=, lut= or reference=, got {chosen or 'none'}"
        )
    if not callable(given[chosen[0]]):
        raise TypeError(f"register_op({name!r}): {chosen[0]} must be callable, got {type(given[chosen[0]]).__name__}")
    if isinstance(magnitude, tuple):
        if len(magnitude) != 2 or not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in magnitude):
            raise ValueError(f"register_op({name!r}): magnitude must be (low, high) finite numbers, got {magnitude!r}")
        magnitude = Magnitude(float(magnitude[0]), float(magnitude[1]), signed=bool(signed))
    elif magnitude is not None and not isinstance(magnitude, Magnitude):
        raise TypeError(f"register_op({name!r}): magnitude must be a Magnitude, (low, high) or None, got {magnitude!r}")
    if isinstance(spaces, str):
        spaces = (spaces,)
    magnitudes = dict(spaces) if isinstance(spaces, Mapping) else {space: magnitude for space in spaces}
    unknown = [space for space in magnitudes if space not in SPACE_BINS]
    if unknown or not magnitudes:
        raise ValueError(
            f"register_op({name!r}): spaces must name some of {', '.join(SPACE_BINS)}; got {unknown or 'none'}"
        )
    if not isinstance(identity, numbers.Real):
        raise TypeError(f"register_op({name!r}): identity must be a number, got {identity!r}")
    kind = {"matrix": "affine", "lut": "lut", "reference": "special"}[chosen[0]]
    spec = OpSpec(
        name,
        kind,
        _user_reference(name, kind, matrix, lut, reference),
        MappingProxyType(magnitudes),
        identity=float(identity),
        doc=doc or f"registered op ({chosen[0]}=)",
    )
    _check_user_op(spec, _probe_values(magnitudes, SPACE_BINS))
    _REGISTRY[name] = spec
    _changed()
    return spec


def unregister_op(name: str) -> None:
    """Remove an op :func:`register_op` added (the last one registered: ids stay dense). The
    built-in ops cannot be removed."""
    if name in BUILTIN_OPS:
        raise ValueError(f"op {name!r} is built in; only ops added with register_op can be removed")
    if name not in _REGISTRY:
        raise KeyError(f"unknown op {name!r}; registered ops: {', '.join(OP_NAMES)}")
    if OP_NAMES[-1] != name:
        raise ValueError(f"op {name!r} is not the last one registered ({OP_NAMES[-1]!r}): remove that one first")
    del _REGISTRY[name]
    _changed()
