"""Ops that need more than the image and its value: Cutout (a position) and SamplePairing (a partner)."""

from __future__ import annotations

import numpy as np

from .color import blend

CUTOUT_FILL = 128
"""Grey (all channels) painted by Cutout."""


def cutout_boxes(values, centers, height: int, width: int) -> np.ndarray:
    """int64[N, 4]: half-open pixel boxes ``(y0, x0, y1, x1)`` of N Cutout squares, clipped.

    Args:
        values: float[N], side of each square as a fraction of the shorter image side (0..0.2).
        centers: float[N, 2], each square's centre ``(cy, cx)`` as fractions of height and
            width in [0, 1).
        height, width: image size in pixels.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if np.any((centers < 0.0) | (centers >= 1.0)):
        bad = centers[np.any((centers < 0.0) | (centers >= 1.0), axis=1)][0]
        raise ValueError(f"Cutout centre {tuple(bad)!r} outside [0, 1)")
    # Python's round() and np.rint both round halves to even.
    side = np.rint(values * min(height, width)).astype(np.int64)
    y0 = np.trunc(centers[:, 0] * height).astype(np.int64) - side // 2
    x0 = np.trunc(centers[:, 1] * width).astype(np.int64) - side // 2
    return np.stack(
        [np.maximum(y0, 0), np.maximum(x0, 0), np.minimum(y0 + side, height), np.minimum(x0 + side, width)], axis=1
    )


def cutout_box(value: float, center, height: int, width: int) -> tuple[int, int, int, int]:
    """Half-open pixel box ``(y0, x0, y1, x1)`` of one Cutout square (see :func:`cutout_boxes`)."""
    if center is None:
        raise ValueError("Cutout needs a centre (cy, cx) in [0, 1); pass rng= to apply_op")
    if np.shape(center) != (2,):
        raise ValueError(f"Cutout centre must be (cy, cx), got {center!r}")
    y0, x0, y1, x1 = (int(v) for v in cutout_boxes([value], [center], height, width)[0])
    return y0, x0, y1, x1


def cutout(image: np.ndarray, value: float, center=None, **_) -> np.ndarray:
    """Paint a grey (128) square of side ``value`` × the shorter side centred at ``center``.

    Matches PIL ``ImageDraw.rectangle`` over the box of :func:`cutout_box` (inclusive
    corners ``(x0, y0, x1 - 1, y1 - 1)``) exactly.
    """
    y0, x0, y1, x1 = cutout_box(value, center, *image.shape[:2])
    out = image.copy()
    out[y0:y1, x0:x1] = CUTOUT_FILL
    return out


def sample_pairing(image: np.ndarray, value: float, other=None, **_) -> np.ndarray:
    """``Image.blend(image, other, value)``: mix in weight ``value`` of a partner image.

    ``other`` is another sample of the batch (uint8, same shape), as it entered the
    policy stage.
    """
    if other is None:
        raise ValueError("SamplePairing needs a partner image (other=)")
    if other.shape != image.shape:
        raise ValueError(f"SamplePairing partner shape {other.shape} differs from image shape {image.shape}")
    return blend(image, other, value)
