"""The ``"pil"`` backend: each sample's ops run on PIL images — PIL's own operations, the
calls of AutoAugment's original code (``ImageOps``, ``ImageEnhance``, ``Image.transform`` /
``Image.rotate`` with NEAREST and a fill colour, ``Image.blend``) — except where a faster form
gives the same pixels: the table ops map the reference's table over the image's own memory
(:mod:`.pil_pixels`), and the slowest ops run one compiled call over it
(:data:`NATIVE_FORMS`, :mod:`.pil_native`). Where those do not apply (no compiler, an old
Pillow, an image in several memory blocks) PIL's own operations run.

The NumPy reference (:mod:`fastpolicy.reference`) is the specification and equals PIL bit
for bit on every registered op (the registry's tolerances are all exact), so this stage is
exact by construction; it is what :class:`~fastpolicy.transforms.PolicyAugment` runs on the
CPU, where a PIL image goes through it without any conversion. Any image size; CPU only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import PIL.Image
import torch
from PIL import ImageEnhance, ImageFilter, ImageOps

from ..params import PolicyParams
from ..reference import blur, color
from ..reference.geometry import FILL, check_fill, shear_x, shear_y, translate_x, translate_y
from ..reference.special import CUTOUT_FILL, cutout_box
from ..registry import OP_NAMES, OPS, on_change
from . import pil_native, pil_pixels
from .protocol import PolicyStage, finish, gather_samples
from .registration import register_stage


class Op(NamedTuple):
    """One applied op of one sample, as it travels from a sampler to a stage; read by field
    name (``op.value``, ``op.partner``), never unpacked by position."""

    op: int
    """The op's registry id (:data:`~fastpolicy.registry.OP_NAMES` index)."""
    value: float
    """Its value in the op's own units (degrees, pixels, a fraction, a level …), sign included."""
    cy: float
    """Cutout's centre row in [0, 1) of the height (unused by other ops)."""
    cx: float
    """Cutout's centre column in [0, 1) of the width (unused by other ops)."""
    partner: int
    """SamplePairing's partner: an index into the batch (unused by other ops)."""


Fill = int | tuple[int, ...]
"""A fill level 0..255 for every channel, or one per channel."""


def _affine(matrix_fn) -> Callable:
    def op(img: PIL.Image.Image, value: float, fill, resample, **_) -> PIL.Image.Image:
        width, height = img.size
        matrix = matrix_fn(value, height, width)
        return img.transform(img.size, PIL.Image.Transform.AFFINE, matrix, resample=resample, fillcolor=fill)

    return op


def _rotate(img, value, fill, resample, **_):
    return img.rotate(value, resample=resample, fillcolor=fill)


def _cutout(img, value, center, **_):
    y0, x0, y1, x1 = cutout_box(value, center, img.size[1], img.size[0])
    out = img.copy()
    if y1 > y0 and x1 > x0:
        out.paste(CUTOUT_FILL if img.mode == "L" else (CUTOUT_FILL,) * 3, (x0, y0, x1, y1))
    return out


PIL_OPS: dict[str, Callable[..., PIL.Image.Image]] = {
    "ShearX": _affine(shear_x),
    "ShearY": _affine(shear_y),
    "TranslateX": _affine(translate_x),
    "TranslateY": _affine(translate_y),
    "Rotate": _rotate,
    "AutoContrast": lambda img, value, **_: ImageOps.autocontrast(img),
    "Invert": lambda img, value, **_: ImageOps.invert(img),
    "Equalize": lambda img, value, **_: ImageOps.equalize(img),
    "Solarize": lambda img, value, **_: ImageOps.solarize(img, value),
    "Posterize": lambda img, value, **_: (
        ImageOps.posterize(img, int(value)) if int(value) >= 1 else img.point([0] * 256 * len(img.getbands()))
    ),  # Pillow ≥ 13 refuses 0 bits (AugMix's and timm's top levels): every level to 0, as the reference
    "Contrast": lambda img, value, **_: ImageEnhance.Contrast(img).enhance(value),
    "Color": lambda img, value, **_: ImageEnhance.Color(img).enhance(value),
    "Brightness": lambda img, value, **_: ImageEnhance.Brightness(img).enhance(value),
    "Sharpness": lambda img, value, **_: ImageEnhance.Sharpness(img).enhance(value),
    "Cutout": _cutout,
    "SamplePairing": lambda img, value, other, **_: PIL.Image.blend(img, other, value),
    "SolarizeAdd": lambda img, value, **_: img.point(
        [min(255, i + int(value)) if i < 128 else i for i in range(256)] * len(img.getbands())
    ),
    "GaussianBlur": lambda img, value, **_: img.filter(ImageFilter.GaussianBlur(blur.check_deviation(value))),
}
"""Built-in op name → ``op(img, value, *, center, other, fill, resample)`` → a new PIL image
(``img`` is not modified). A test asserts it covers the built-in ops exactly."""


def _registered(spec) -> Callable[..., PIL.Image.Image]:
    """The PIL form of an op added with :func:`~fastpolicy.registry.register_op`: a geometric
    op as ``Image.transform`` with its matrix, a table op as ``Image.point``, any other through
    its reference on the image's pixels."""
    if spec.kind == "affine":
        return _affine(spec.reference.matrix)
    if spec.kind == "lut":
        table = spec.reference.table
        return lambda img, value, **_: img.point([int(v) for v in np.asarray(table(value))] * len(img.getbands()))

    def op(img, value, **_):
        pixels = np.asarray(img)
        out = spec.reference(pixels[..., None] if img.mode == "L" else pixels, value)
        return PIL.Image.fromarray(out[..., 0] if img.mode == "L" else out)

    return op


_SHAPES = {mode: np.empty((1, 1, bands), np.uint8) for mode, bands in pil_pixels.BANDS.items()}
"""A pixel of each mode: what a reference table function reads of the image when it is given
the image's statistic."""


def _statistic(img: PIL.Image.Image, kind: str):
    """What a table op of registry ``stats`` ``kind`` reads of ``img``, counted over its own
    memory: the per-band histogram (``"minmax"``, ``"histogram"``) or the grey mean
    (``"mean"``, of ``img.convert("L")`` as ``ImageEnhance.Contrast`` takes it); None where
    :mod:`.pil_pixels` does not apply."""
    if kind in ("minmax", "histogram"):
        return pil_pixels.histogram(img)
    if kind == "mean":
        counts = pil_pixels.histogram(img if img.mode == "L" else img.convert("L"))
        return None if counts is None else color.histogram_mean(counts[0])
    return None


def _lookup(spec, own: Callable[..., PIL.Image.Image]) -> Callable[..., PIL.Image.Image]:
    """The PIL form of a built-in table op: the reference's table for the image
    (``spec.reference.lut``; its statistic counted over the image's memory) mapped over the
    image's own memory by :mod:`.pil_pixels` — one pass, where PIL's ``ImageOps`` and
    ``ImageEnhance`` build their tables in Python, convert and blend — or ``own``, PIL's own
    operation, where that path does not apply (the same pixels: the reference equals PIL).
    Tables that depend on the value only are kept, per value and mode (at most 4096)."""
    table_of, statistic = spec.reference.lut, spec.stats
    kept: dict = {}

    def op(img: PIL.Image.Image, value: float, **options) -> PIL.Image.Image:
        shape = _SHAPES.get(img.mode)
        if shape is None or 0 in img.size:
            return own(img, value, **options)
        if statistic is None:
            table = kept.get((value, img.mode))
            if table is None:
                if len(kept) >= 4096:
                    kept.clear()
                table = kept[(value, img.mode)] = table_of(shape, value)
        else:
            counted = _statistic(img, statistic)
            if counted is None:
                return own(img, value, **options)
            table = table_of(shape, value, statistic=counted)
        out = pil_pixels.lookup(img, table)
        return own(img, value, **options) if out is None else out

    return op


NATIVE_FORMS: dict[str, Callable[[PIL.Image.Image, float], PIL.Image.Image | None]] = {
    "Sharpness": pil_native.sharpness,
    "Color": pil_native.color,
    "Equalize": pil_native.equalize,
    "AutoContrast": pil_native.autocontrast,
    "Contrast": pil_native.contrast,
}
"""Ops the PIL stage runs through :mod:`.pil_native` (one compiled call from the image's own
memory to a new image's) where it builds. Each form returns None where it does not apply, and
the op's other form runs (a table op's :func:`_lookup`, else PIL's own)."""


def _native(spec, own: Callable[..., PIL.Image.Image]) -> Callable[..., PIL.Image.Image]:
    """The PIL form of an op of :data:`NATIVE_FORMS`: its native form (exact against the
    reference, as every backend), or ``own`` where that does not apply."""
    native = NATIVE_FORMS[spec.name]

    def op(img: PIL.Image.Image, value: float, **options) -> PIL.Image.Image:
        out = native(img, value)
        return own(img, value, **options) if out is None else out

    return op


def _form(name: str) -> Callable[..., PIL.Image.Image]:
    """The PIL stage's form of op ``name``."""
    spec = OPS[name]
    if name not in PIL_OPS:
        return _registered(spec)
    form = _lookup(spec, PIL_OPS[name]) if spec.kind == "lut" and hasattr(spec.reference, "lut") else PIL_OPS[name]
    return _native(spec, form) if name in NATIVE_FORMS else form


_BY_ID: list[Callable[..., PIL.Image.Image]] = []


@on_change
def _read_registry() -> None:
    _BY_ID[:] = [_form(name) for name in OP_NAMES]


_read_registry()


def pil_fill(fill: Fill, mode: str) -> int | tuple[int, ...]:
    """``fill`` as PIL's ``fillcolor`` for an image of ``mode`` (``"L"`` or ``"RGB"``): an int
    for L, a 3-tuple for RGB (one level repeated, or the per-channel levels)."""
    levels = (fill,) if isinstance(fill, int) else tuple(fill)
    channels = 1 if mode == "L" else 3
    if len(levels) == 1:
        levels = levels * channels
    if len(levels) != channels:
        raise ValueError(f"fill {fill!r} has {len(levels)} levels for a {channels}-channel image")
    return levels[0] if channels == 1 else levels


class PilStage(PolicyStage):
    """PIL's operations per sample (see the module docstring).

    Args:
        fill: the geometric ops' fill, a level 0..255 or one per channel.
        resample: the geometric ops' PIL resampling filter (``PIL.Image.NEAREST``, the
            registry's ops; BILINEAR and BICUBIC are PIL's and have no reference).
    """

    name = "pil"

    def __init__(self, fill: Fill = FILL, resample: int = PIL.Image.Resampling.NEAREST):
        if isinstance(fill, (int, np.integer)):
            self.fill: Fill = check_fill(fill)
        else:
            self.fill = tuple(check_fill(level, "each fill level") for level in fill)
        self.resample = resample
        self._fill_for: dict[str, int | tuple[int, ...]] = {}

    def apply_ops(
        self, img: PIL.Image.Image, ops: Sequence[Op], partners: Sequence[PIL.Image.Image] | None = None
    ) -> PIL.Image.Image:
        """``img`` (mode L or RGB, not modified) with ``ops`` applied in order; SamplePairing
        blends with ``partners[partner]`` (None: with ``img`` as it came in). Returns ``img``
        itself when ``ops`` is empty."""
        fill = self._fill_for.get(img.mode)
        if fill is None:
            fill = self._fill_for[img.mode] = pil_fill(self.fill, img.mode)
        out = img
        for op in ops:
            other = img if partners is None else partners[op.partner]
            out = _BY_ID[op.op](out, op.value, center=(op.cy, op.cx), other=other, fill=fill, resample=self.resample)
        return out

    def apply(self, images: torch.Tensor, params: PolicyParams | None, out):
        images = gather_samples(images, params)
        if params is None or images.shape[0] == 0:
            return finish(images, out)
        device, pixels = images.device, images.cpu().numpy()
        mode = "L" if pixels.shape[3] == 1 else "RGB"
        originals = [PIL.Image.fromarray(p[..., 0] if mode == "L" else p) for p in pixels]
        result = np.empty_like(pixels)
        for i, img in enumerate(originals):
            ops = sample_ops(params, i)
            augmented = np.asarray(self.apply_ops(img, ops, originals))
            result[i] = augmented[..., None] if mode == "L" else augmented
        return finish(torch.from_numpy(result).to(device), out)


def sample_ops(params: PolicyParams, i: int) -> list[Op]:
    """Sample ``i``'s applied ops in slot order (skipped slots left out)."""
    out: list[Op] = []
    for k in range(params.k):
        if params.op[i, k] >= 0:
            cy, cx = (float(v) for v in params.center[i, k])
            out.append(Op(int(params.op[i, k]), float(params.value[i, k]), cy, cx, int(params.partner[i, k])))
    return out


register_stage(
    "pil",
    devices=("cpu",),
    available=lambda: True,
    build=lambda device, *, fill, **_: PilStage(fill),
    default_on=(),  # asked for by name (PolicyAugment on the CPU); a loader's batches keep their default
    priority=15,
    label="fastpolicy (PIL)",
    any_size=True,
)
