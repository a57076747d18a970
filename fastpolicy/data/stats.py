"""Normalization statistics of in-memory images, computed in one place."""

from __future__ import annotations

import numpy as np


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation, in [0, 1] units, of uint8 images [..., C].

    A constant channel (std 0) gets std 1, so normalizing only centres it."""
    scaled = images.reshape(-1, images.shape[-1]) / 255.0
    std = scaled.std(0)
    return tuple(float(v) for v in scaled.mean(0)), tuple(float(v) for v in np.where(std > 0, std, 1.0))
