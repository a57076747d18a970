"""DALI implementations of every registry op, attached with ``register_backend("dali", name)``.

Each implementation is ``impl(image, args)``: ``image`` a DALI DataNode of uint8 HWC
images (C = 1 or 3), ``args`` a :class:`DaliSlotArgs` of per-sample DataNodes (the
fields of :data:`~fastpolicy.backends.dali_stage.DALI_FIELDS`). All match the NumPy
reference pixel for pixel on the CPU (tested): they repeat its arithmetic — float32
blends truncated toward zero, float64 where PIL computes in Python floats, PIL's
integer grey conversion, and the fixed-point warp matrix.

DALI's own ``auto_aug.augmentations`` are reused where their semantics are PIL's
(Invert, Posterize, Solarize); the rest are written here, because DALI's versions
differ (OpenCV equalization, HSV saturation for Color, bilinear rotation, a
differently centred contrast).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nvidia.dali import fn, types
from nvidia.dali import math as dmath
from nvidia.dali.auto_aug import augmentations as dali_aug
from nvidia.dali.data_node import DataNode

from ..reference import color, geometry, special
from ..registry import OPS, register_backend


@dataclass
class DaliSlotArgs:
    """Per-sample DataNodes of one slot (see :data:`~fastpolicy.backends.dali_stage.DALI_FIELDS`).

    ``value32``, ``blur_taps`` and ``blur_weights`` live on the images' device (operands);
    ``matrix``/``anchor``/``shape`` on the CPU (argument inputs); ``partner_image`` is
    the partner sample (same device as ``image``) or None where the stage has none;
    ``channels`` (1 or 3), ``size`` ((H, W)) and ``fill`` (the geometric ops' 0..255 fill
    level) are fixed when the pipeline is built.
    """

    value32: DataNode
    matrix: DataNode
    anchor: DataNode
    shape: DataNode
    blur_taps: DataNode
    blur_weights: DataNode
    partner_image: DataNode | None
    channels: int
    size: tuple[int, int]
    fill: int = geometry.FILL


def _u8(node: DataNode) -> DataNode:
    """Truncate a non-negative-or-clipped float result to uint8 as PIL does (clip, then trunc)."""
    return fn.reshape(fn.cast(dmath.floor(dmath.clamp(node, 0.0, 255.0)), dtype=types.UINT8), layout="HWC")


def _hwc(node: DataNode) -> DataNode:
    return fn.reshape(node, layout="HWC")


def _float32(node: DataNode) -> DataNode:
    return fn.cast(node, dtype=types.FLOAT)


def blend(first: DataNode, second: DataNode, alpha: DataNode) -> DataNode:
    """``Image.blend``: float32 ``first + alpha * (second - first)``, truncated, clipped; uint8 HWC.

    The difference is taken in int32 and converted, like the reference's int16 difference.
    """
    delta = _float32(fn.cast(second, dtype=types.INT32) - fn.cast(first, dtype=types.INT32))
    return _u8(_float32(first) + alpha * delta)


def luminance(image: DataNode, channels: int) -> DataNode:
    """uint8 HW1: PIL's RGB→L ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16`` (grey input as is)."""
    if channels == 1:
        return image
    rgb = fn.cast(image, dtype=types.INT32)
    grey = (rgb[:, :, 0:1] * 19595 + rgb[:, :, 1:2] * 38470 + rgb[:, :, 2:3] * 7471 + 32768) // 65536
    return _hwc(fn.cast(grey, dtype=types.UINT8))


def warp(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """All geometric ops: one nearest-neighbour warp by the slot's exact matrix, fill ``args.fill``."""
    return _hwc(
        fn.warp_affine(
            image, matrix=args.matrix, inverse_map=True, interp_type=types.INTERP_NN, fill_value=float(args.fill)
        )
    )


@register_backend("dali", "Invert")
def invert(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return _hwc(dali_aug.invert.op(image, None))


@register_backend("dali", "Solarize")
def solarize(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return _hwc(fn.cast(dali_aug.solarize.op(image, args.value32), dtype=types.UINT8))


_POSTERIZE_MASKS = [int(color.posterize_lut(np.zeros((1, 1, 1), np.uint8), bits)[0, 255]) for bits in range(9)]


@register_backend("dali", "Posterize")
def posterize(image: DataNode, args: DaliSlotArgs) -> DataNode:
    bits = fn.cast(args.value32, dtype=types.INT32)
    mask = fn.lookup_table(bits, keys=list(range(9)), values=_POSTERIZE_MASKS, dtype=types.UINT8)
    return _hwc(dali_aug.posterize.op(image, mask))


@register_backend("dali", "SolarizeAdd")
def solarize_add(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """``min(255, v + trunc(value))`` below 128, else ``v`` (in int32)."""
    levels = fn.cast(image, dtype=types.INT32)
    add = fn.cast(args.value32, dtype=types.INT32)
    below = fn.cast(levels < 128, dtype=types.INT32)
    added = dmath.min(levels + add, 255)
    return _hwc(fn.cast(levels + below * (added - levels), dtype=types.UINT8))


@register_backend("dali", "AutoContrast")
def autocontrast(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """Per channel ``trunc(v * 255/(hi-lo) - lo * 255/(hi-lo))`` in float64 (PIL's Python floats)."""
    lo = fn.cast(fn.reductions.min(image, axis_names="HW", keep_dims=True), dtype=types.FLOAT64)
    hi = fn.cast(fn.reductions.max(image, axis_names="HW", keep_dims=True), dtype=types.FLOAT64)
    stretch = hi > lo
    scale = 255.0 / (hi - lo + (stretch ^ True))
    offset = -lo * scale
    stretched = fn.cast(image, dtype=types.FLOAT64) * scale + offset
    kept = fn.cast(image, dtype=types.FLOAT64)
    return _u8(stretched * stretch + kept * (stretch ^ True))


def _equalize_sample(image):
    """PIL equalization of one HWC sample, NumPy or CuPy (DALI hands CuPy arrays on the GPU)."""
    xp = np
    if type(image).__module__.startswith("cupy"):
        import cupy as xp
    out = xp.empty_like(image)
    for c in range(image.shape[2]):
        channel = image[:, :, c]
        hist = xp.bincount(channel.ravel(), minlength=256)
        occupied = xp.flatnonzero(hist)
        step = (int(hist.sum()) - int(hist[occupied[-1]])) // 255
        if step == 0:
            out[:, :, c] = channel
            continue
        before = xp.concatenate([xp.zeros(1, hist.dtype), xp.cumsum(hist)[:-1]])
        table = xp.clip((before + step // 2) // step, 0, 255).astype(xp.uint8)
        out[:, :, c] = table[channel]
    return out


@register_backend("dali", "Equalize")
def equalize(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """PIL's equalization (DALI's ``equalize`` is OpenCV's), as a per-sample Python function."""
    device = "gpu" if image.device == "gpu" else "cpu"
    return _hwc(fn.python_function(image, function=_equalize_sample, device=device, batch_processing=False))


@register_backend("dali", "Contrast")
def contrast(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """Blend with the rounded mean of the L image (float64 mean, float32 blend)."""
    grey = luminance(image, args.channels)
    total = fn.cast(fn.reductions.sum(grey, dtype=types.UINT64), dtype=types.FLOAT64)
    mean = dmath.floor(total / float(args.size[0] * args.size[1]) + 0.5)
    return blend(fn.cast(mean, dtype=types.UINT8), image, args.value32)


@register_backend("dali", "Brightness")
def brightness(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return _u8(args.value32 * _float32(image))


@register_backend("dali", "Color")
def color_(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return blend(luminance(image, args.channels), image, args.value32)


def smooth_interior(image: DataNode) -> DataNode:
    """float32 [H-2, W-2, C]: PIL's SMOOTH filter plus its 0.5 rounding bias, before truncation.

    DALI's filter sums the nine taps in its own order; float32 rounding could then differ
    from PIL's in the last bit, which would move a pixel only on an exact .5 tie. It
    matches the reference on every tested photo and magnitude.
    """
    kernel = np.asarray(color.SMOOTH, dtype=np.float32).reshape(3, 3)
    smoothed = fn.filter(image, kernel, dtype=types.FLOAT, border="clamp")
    return smoothed[1:-1, 1:-1] + 0.5


@register_backend("dali", "Sharpness")
def sharpness(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """Blend with the SMOOTH image inside a 1-pixel border, which PIL keeps unchanged."""
    height, width = args.size
    if height < 3 or width < 3:
        return image
    smoothed = fn.cast(dmath.floor(dmath.clamp(smooth_interior(image), 0.0, 255.0)), dtype=types.UINT8)
    inner = blend(smoothed, image[1:-1, 1:-1], args.value32)
    middle = fn.cat(image[1:-1, 0:1], inner, image[1:-1, width - 1 :], axis_name="W")
    return _hwc(fn.cat(image[0:1], middle, image[height - 1 :], axis_name="H"))


def _box_pass(image: DataNode, inside: DataNode, far: DataNode, ww: DataNode, fw: DataNode) -> DataNode:
    """One of PIL's extended box passes along the axis the filters lie on: the box's sum and the
    two far taps from DALI's filter (integers, exact in its float32), edges clamped, then
    ``(ww·sum + fw·far + 2^23) >> 24`` in int64; uint8 HWC."""
    total = fn.cast(fn.filter(image, inside, border="clamp", dtype=types.FLOAT), dtype=types.INT64)
    ends = fn.cast(fn.filter(image, far, border="clamp", dtype=types.FLOAT), dtype=types.INT64)
    return _hwc(fn.cast((total * ww + ends * fw + (1 << 23)) // (1 << 24), dtype=types.UINT8))


@register_backend("dali", "GaussianBlur")
def gaussian_blur(image: DataNode, args: DaliSlotArgs) -> DataNode:
    """PIL's GaussianBlur: three box passes along the rows, then three along the columns, each
    rounded to uint8 (:mod:`fastpolicy.reference.blur`); the box of each sample from its fields."""
    ww, fw = (fn.cast(args.blur_weights[i], dtype=types.INT64) for i in (0, 1))
    inside, far = args.blur_taps[0:1], args.blur_taps[1:2]  # [1, T]: along W
    inside_t, far_t = fn.transpose(inside, perm=[1, 0]), fn.transpose(far, perm=[1, 0])  # [T, 1]: along H
    for _ in range(3):
        image = _box_pass(image, inside, far, ww, fw)
    for _ in range(3):
        image = _box_pass(image, inside_t, far_t, ww, fw)
    return image


@register_backend("dali", "Cutout")
def cutout(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return _hwc(
        fn.erase(image, anchor=args.anchor, shape=args.shape, axis_names="HW", fill_value=float(special.CUTOUT_FILL))
    )


@register_backend("dali", "SamplePairing")
def sample_pairing(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return blend(image, args.partner_image, args.value32)


def identity(image: DataNode, args: DaliSlotArgs) -> DataNode:
    return image


def implementation(spec):
    """Op ``spec``'s DALI function: its own, or the warp for any geometric op (a registered
    one too); None where it has none (a registered table or reference op)."""
    found = spec.backends.get("dali")
    return warp if found is None and spec.kind == "affine" else found


for _spec in OPS.values():
    if _spec.kind == "affine":
        register_backend("dali", _spec.name)(warp)
