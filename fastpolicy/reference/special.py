"""Ops that need more than the image and its value: Cutout (a position) and SamplePairing (a partner)."""

from __future__ import annotations

import numpy as np

from .color import blend

CUTOUT_FILL = 128
"""Grey (all channels) painted by Cutout."""


def cutout_box(value: float, center, height: int, width: int) -> tuple[int, int, int, int]:
    """Half-open pixel box ``(y0, x0, y1, x1)`` of a Cutout square, clipped to the image.

    Args:
        value: side of the square as a fraction of the shorter image side (0..0.2).
        center: ``(cy, cx)``, the square's centre as fractions of height and width in [0, 1).
        height, width: image size in pixels.
    """
    if center is None:
        raise ValueError("Cutout needs a centre (cy, cx) in [0, 1); pass rng= to apply_op")
    cy, cx = (float(c) for c in center)
    if not (0.0 <= cy < 1.0 and 0.0 <= cx < 1.0):
        raise ValueError(f"Cutout centre {tuple(center)!r} outside [0, 1)")
    side = int(round(float(value) * min(height, width)))
    y0 = int(cy * height) - side // 2
    x0 = int(cx * width) - side // 2
    return max(y0, 0), max(x0, 0), min(y0 + side, height), min(x0 + side, width)


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
