"""Colour ops: PIL's ``ImageOps`` lookup tables and ``ImageEnhance`` blends, exactly.

Images are uint8 HWC with C = 1 (PIL mode "L") or 3 ("RGB"). Lookup-table ops build
a per-channel table ``uint8[C, 256]`` (:func:`lut` functions) and apply it; the GPU
kernels use the same tables. Blends reproduce PIL's ``ImagingBlend``: float32
arithmetic ``in1 + alpha * (in2 - in1)``, truncated toward zero and clipped.
"""

from __future__ import annotations

import numpy as np

_IDENTITY = np.arange(256, dtype=np.int64)


def histogram(image: np.ndarray) -> np.ndarray:
    """int64[C, 256]: per-channel histogram of a uint8 HWC image."""
    channels = image.shape[2]
    flat = image.reshape(-1, channels).T.astype(np.int64) + 256 * np.arange(channels)[:, None]
    return np.bincount(flat.ravel(), minlength=256 * channels).reshape(channels, 256)


def apply_lut(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map every channel ``c`` of ``image`` (uint8 HWC) through ``table[c]`` (uint8[C, 256])."""
    return np.take_along_axis(table.T, image.reshape(-1, image.shape[2]).astype(np.intp), axis=0).reshape(image.shape)


def _per_channel(row: np.ndarray, image: np.ndarray) -> np.ndarray:
    return np.broadcast_to(row.astype(np.uint8), (image.shape[2], 256))


def invert_lut(image: np.ndarray, value: float = 0.0) -> np.ndarray:
    """``ImageOps.invert``: ``255 - v``."""
    return _per_channel(255 - _IDENTITY, image)


def solarize_lut(image: np.ndarray, value: float) -> np.ndarray:
    """``ImageOps.solarize(threshold=value)``: ``v`` below the threshold, else ``255 - v``."""
    return _per_channel(np.where(value > _IDENTITY, _IDENTITY, 255 - _IDENTITY), image)


def posterize_lut(image: np.ndarray, value: float) -> np.ndarray:
    """``ImageOps.posterize(bits=value)``: keep the ``value`` high bits."""
    bits = int(value)
    if not 0 <= bits <= 8:
        raise ValueError(f"Posterize bits must be in [0, 8], got {value!r}")
    return _per_channel(_IDENTITY & ~(2 ** (8 - bits) - 1), image)


def solarize_add_lut(image: np.ndarray, value: float) -> np.ndarray:
    """timm's ``solarize_add(add=value, thresh=128)``: ``min(255, v + add)`` for ``v`` below 128,
    else ``v``; ``add`` is ``int(value)`` (whole levels), at least 0."""
    add = int(value)
    if add < 0:
        raise ValueError(f"SolarizeAdd's addend must be ≥ 0, got {value!r}")
    return _per_channel(np.where(_IDENTITY < 128, np.minimum(255, _IDENTITY + add), _IDENTITY), image)


def autocontrast_lut(image: np.ndarray, value: float = 0.0, statistic: np.ndarray | None = None) -> np.ndarray:
    """``ImageOps.autocontrast()`` (cutoff 0): stretch each channel's [min, max] to [0, 255].

    A constant channel keeps the identity table (no division by zero). ``statistic``: the
    image's :func:`histogram` where the caller has it (then only ``image``'s shape is read).
    """
    hist = histogram(image) if statistic is None else statistic
    occupied = hist > 0
    lo = occupied.argmax(axis=1)  # each channel's lowest and highest occupied level
    hi = 255 - occupied[:, ::-1].argmax(axis=1)
    flat = hi <= lo
    scale = 255.0 / np.where(flat, 1, hi - lo)
    offset = -lo * scale
    # int() truncates toward zero, as PIL's Python loop does.
    tables = np.clip(np.trunc(_IDENTITY * scale[:, None] + offset[:, None]), 0, 255).astype(np.int64)
    tables[flat] = _IDENTITY
    return tables.astype(np.uint8)


def equalize_lut(image: np.ndarray, value: float = 0.0, statistic: np.ndarray | None = None) -> np.ndarray:
    """``ImageOps.equalize()``: PIL's integer cumulative-histogram table per channel.

    ``step = (count - count of the last occupied level) // 255`` (Pillow ≥ 13, like
    TF's AutoAugment and torchvision; Pillow before 10 divided by 256). A channel with
    one grey level, or a zero step, keeps the identity table. ``statistic``: the image's
    :func:`histogram` where the caller has it.
    """
    hist = histogram(image) if statistic is None else statistic
    last = 255 - (hist[:, ::-1] > 0).argmax(axis=1)  # each channel's last occupied level
    # the count less the last level's (0 with one level or none: the identity table)
    step = (hist.sum(axis=1) - hist[np.arange(len(hist)), last]) // 255
    cumulative = step[:, None] // 2 + np.concatenate(
        [np.zeros((len(hist), 1), np.int64), np.cumsum(hist, axis=1)[:, :-1]], 1
    )
    tables = np.where(step[:, None] > 0, cumulative // np.maximum(step, 1)[:, None], _IDENTITY)
    return np.clip(tables, 0, 255).astype(np.uint8)


def blend(first: np.ndarray, second: np.ndarray, alpha: float) -> np.ndarray:
    """``Image.blend(first, second, alpha)``: uint8 out of float32 ``first + alpha*(second-first)``.

    ``first`` broadcasts against ``second`` (a constant degenerate image may be a scalar).
    """
    a = np.float32(alpha)
    first32 = np.asarray(first, dtype=np.float32)
    delta = (np.asarray(second, dtype=np.int16) - np.asarray(first, dtype=np.int16)).astype(np.float32)
    out = first32 + a * delta
    return np.clip(np.trunc(out), 0, 255).astype(np.uint8)


def luminance(image: np.ndarray) -> np.ndarray:
    """uint8 HW1: PIL's RGB→L conversion ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16``."""
    if image.shape[2] == 1:
        return image
    rgb = image.astype(np.int64)
    grey = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return grey.astype(np.uint8)[..., None]


def grey_mean(image: np.ndarray) -> int:
    """``ImageEnhance.Contrast``'s degenerate level: mean of the L image, rounded half up."""
    return histogram_mean(histogram(luminance(image))[0])


def histogram_mean(hist: np.ndarray) -> int:
    """The mean level of a one-band histogram (int64[256]) rounded half up, as
    ``int(ImageStat.Stat(image).mean[0] + 0.5)``."""
    return int(float((hist * _IDENTITY).sum()) / float(hist.sum()) + 0.5)


def contrast_lut(image: np.ndarray, value: float, statistic: int | None = None) -> np.ndarray:
    """``ImageEnhance.Contrast(value)``: blend with the grey mean; a lookup table per channel.
    ``statistic``: the image's :func:`grey_mean` where the caller has it."""
    mean = grey_mean(image) if statistic is None else statistic
    row = blend(np.full(256, mean, dtype=np.uint8), _IDENTITY.astype(np.uint8), value)
    return _per_channel(row, image)


def brightness_lut(image: np.ndarray, value: float) -> np.ndarray:
    """``ImageEnhance.Brightness(value)``: blend with black; a lookup table per channel."""
    return _per_channel(blend(np.zeros(256, np.uint8), _IDENTITY.astype(np.uint8), value), image)


def color(image: np.ndarray, value: float, **_) -> np.ndarray:
    """``ImageEnhance.Color(value)``: blend with the image's own L (grey) version."""
    return blend(luminance(image), image, value)


SMOOTH = (np.array([1, 1, 1, 1, 5, 1, 1, 1, 1], dtype=np.float64) / 13).astype(np.float32)
"""PIL's ``ImageFilter.SMOOTH`` 3×3 kernel, normalized in float64 and stored as float32."""


def smooth(image: np.ndarray) -> np.ndarray:
    """``image.filter(ImageFilter.SMOOTH)``: 3×3 smoothing in PIL's float32 order; border kept.

    Images smaller than 3×3 are returned unchanged, as PIL does.
    """
    height, width = image.shape[:2]
    if height < 3 or width < 3:
        return image.copy()
    x = image.astype(np.float32)
    k = SMOOTH

    def row(r: np.ndarray, taps: np.ndarray) -> np.ndarray:
        return (r[:, :-2] * taps[0] + r[:, 1:-1] * taps[1]) + r[:, 2:] * taps[2]

    # ImagingFilter3x3: offset 0 + 0.5 rounding bias, then rows y+1, y, y-1.
    total = np.float32(0.5) + row(x[2:], k[0:3])
    total = total + row(x[1:-1], k[3:6])
    total = total + row(x[:-2], k[6:9])
    out = image.copy()
    out[1:-1, 1:-1] = np.clip(total, 0, 255).astype(np.uint8)
    return out


def sharpness(image: np.ndarray, value: float, **_) -> np.ndarray:
    """``ImageEnhance.Sharpness(value)``: blend with the SMOOTH-filtered image."""
    return blend(smooth(image), image, value)


def lookup(lut_fn):
    """Reference op ``(image, value) -> image`` applying the table ``lut_fn(image, value)``."""

    def op(image: np.ndarray, value: float, **_) -> np.ndarray:
        return apply_lut(image, lut_fn(image, value))

    op.__name__ = lut_fn.__name__.removesuffix("_lut")
    op.__doc__ = f"Apply :func:`{lut_fn.__name__}`. {lut_fn.__doc__}"
    op.lut = lut_fn
    return op
