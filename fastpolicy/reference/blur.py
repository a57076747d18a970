"""PIL's ``ImageFilter.GaussianBlur``, exactly: three extended box-blur passes per axis.

PIL (``libImaging/BoxBlur.c``) turns the Gaussian's radius (its standard deviation, in
pixels) into one box radius ``R`` (float32, :func:`box_radius`), then blurs each row three
times and each column three times. A pass computes, for every pixel of a line, in 32-bit
integers::

    out[x] = (ww · Σ_{|i - x| ≤ r} p[i] + fw · (p[x - r - 1] + p[x + r + 1]) + 2^23) >> 24

with ``r = int(R)``, ``ww = uint32(2^24 / (2R + 1))`` (float32), ``fw = (2^24 - (2r + 1) ww) / 2``
and ``p`` clamped at the line's ends (:func:`box_weights`). Each pass rounds to uint8.
"""

from __future__ import annotations

import math

import numpy as np

PASSES = 3
"""Box passes per axis (PIL's default for ``GaussianBlur``)."""

MAX_DEVIATION = 1000.0
"""Largest deviation (pixels) fastpolicy takes: far beyond any augmentation's, and a bound on
the work (a stage reads 2r + 3 taps per pixel and pass)."""

_ONE = 1 << 24
_F32 = np.float32


def check_deviation(value: float) -> float:
    """``value`` as a deviation in pixels, or ValueError naming it: a number in [0, :data:`MAX_DEVIATION`]
    (PIL would blur by |value| where it is negative)."""
    if not 0 <= value <= MAX_DEVIATION:
        raise ValueError(f"GaussianBlur's deviation must be in [0, {MAX_DEVIATION:g}] pixels, got {float(value)!r}")
    return value


def deviation_below(r: int) -> float:
    """The deviation below which PIL's box radius stays under ``r + 1`` (its whole part ≤ r):
    ``sqrt((r + 1)(r + 2))``, where the box length ``sqrt(4σ² + 1)`` reaches ``2r + 3`` (PIL's
    float32 radius may round onto the edge itself from within a few parts in 10⁸)."""
    return math.sqrt((r + 1) * (r + 2))


def box_radius(radius: float) -> float:
    """PIL's ``_gaussian_blur_radius(radius, 3)``: the extended box's radius (float32 arithmetic,
    its square root and floor in float64, as PIL's C) for a Gaussian of deviation ``radius``
    pixels (a float32 in PIL's call)."""
    r = _F32(radius)
    sigma2 = _F32(r * r) / _F32(PASSES)
    length = _F32(math.sqrt(12.0 * float(sigma2) + 1.0))
    whole = _F32(math.floor((float(length) - 1.0) / 2.0))
    a = (_F32(2) * whole + _F32(1)) * (whole * (whole + _F32(1)) - _F32(3) * sigma2)
    a = a / (_F32(6) * (sigma2 - (whole + _F32(1)) * (whole + _F32(1))))
    return float(whole + a)


def box_weights(box: float) -> tuple[int, int, int]:
    """``(r, ww, fw)`` of one pass of box radius ``box`` (PIL's ``ImagingHorizontalBoxBlur``):
    the whole radius, the weight of the 2r + 1 pixels inside and of the two at distance r + 1,
    out of 2^24."""
    r = int(box)
    ww = int(_F32(_ONE) / (_F32(box) * _F32(2) + _F32(1)))
    fw = (_ONE - (2 * r + 1) * ww) // 2
    return r, ww, fw


def box_weights_of(values: np.ndarray) -> np.ndarray:
    """int32 [N, 3]: ``(r, ww, fw)`` for each deviation of ``values`` (float64 [N], each checked by
    :func:`check_deviation`), the arithmetic of :func:`box_radius` and :func:`box_weights` on
    arrays (the same float32 and float64 roundings)."""
    values = np.asarray(values, np.float64)
    bad = ~((values >= 0) & (values <= MAX_DEVIATION))
    if bad.any():
        check_deviation(float(values[bad][0]))
    r32 = values.astype(_F32)
    sigma2 = (r32 * r32) / _F32(PASSES)
    length = np.sqrt(12.0 * sigma2.astype(np.float64) + 1.0).astype(_F32)
    whole = np.floor((length.astype(np.float64) - 1.0) / 2.0).astype(_F32)
    a = (_F32(2) * whole + _F32(1)) * (whole * (whole + _F32(1)) - _F32(3) * sigma2)
    a = a / (_F32(6) * (sigma2 - (whole + _F32(1)) * (whole + _F32(1))))
    box = whole + a
    r = box.astype(np.int64)  # C's (int) truncation; box ≥ 0
    ww = (_F32(_ONE) / (box * _F32(2) + _F32(1))).astype(np.int64)
    fw = (_ONE - (2 * r + 1) * ww) // 2
    return np.stack([r, ww, fw], axis=1).astype(np.int32)


def box_pass(lines: np.ndarray, r: int, ww: int, fw: int) -> np.ndarray:
    """One extended box pass along the last axis of ``lines`` (uint8 […, W]) → uint8 […, W]."""
    padded = np.pad(lines.astype(np.int64), [(0, 0)] * (lines.ndim - 1) + [(r + 1, r + 1)], mode="edge")
    width = lines.shape[-1]
    sums = np.concatenate([np.zeros((*lines.shape[:-1], 1), np.int64), np.cumsum(padded, axis=-1)], axis=-1)
    inside = sums[..., 2 * r + 2 : 2 * r + 2 + width] - sums[..., 1 : 1 + width]
    far = padded[..., :width] + padded[..., 2 * r + 2 : 2 * r + 2 + width]
    return ((inside * ww + far * fw + (1 << 23)) >> 24).astype(np.uint8)


def gaussian_blur(image: np.ndarray, value: float, **_) -> np.ndarray:
    """``image.filter(ImageFilter.GaussianBlur(value))``: uint8 HWC (C = 1 or 3) blurred with a
    Gaussian of deviation ``value`` pixels (:func:`check_deviation`; 0 returns a copy) → a new
    uint8 HWC array."""
    box = box_radius(check_deviation(value))
    if box == 0:
        return image.copy()
    r, ww, fw = box_weights(box)
    rows = np.moveaxis(image, 2, 0)  # [C, H, W]: rows along the last axis
    for _pass in range(PASSES):
        rows = box_pass(rows, r, ww, fw)
    columns = np.swapaxes(rows, 1, 2)  # [C, W, H]
    for _pass in range(PASSES):
        columns = box_pass(columns, r, ww, fw)
    return np.ascontiguousarray(np.moveaxis(np.swapaxes(columns, 1, 2), 0, 2))
