"""How a magnitude bin becomes an op's parameter.

A :class:`Magnitude` maps an integer bin in ``[0, n_bins)`` (and, for signed ops, a
sign in ``{-1, +1}``) to the op's *value* in its physical unit: a shear coefficient,
a fraction of the image side, degrees, an enhance factor, a number of bits, a
threshold on the 0..255 scale, a blend weight.

    value = centre + sign * (low + (high - low) * bin / (n_bins - 1))

rounded to the nearest integer when ``integer`` is set (Posterize's bits), and raised to
``floor`` when one is set (DALI's Posterize keeps at least 1 bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 10
"""Magnitude bins of both papers' search spaces (AutoAugment's 10-bin range)."""

SPACE_BINS = {
    "adversarial": N_BINS,
    "aws": N_BINS,
    "autoaugment": N_BINS,
    "randaugment": 31,
    "trivialaugment_wide": 31,
    "timm": 11,
    "dali": 11,
    "augmix": N_BINS,
}
"""Every search space an op may belong to (``OpSpec.magnitudes`` keys) → its magnitude bins:
the two papers', then the standard policies' (:data:`fastpolicy.spaces.STANDARD_BINS`)."""


@dataclass(frozen=True)
class Magnitude:
    """Linear bin→value mapping of one op in one search space.

    Attributes:
        low: value magnitude at bin 0 (before ``centre`` and sign).
        high: value magnitude at the last bin.
        signed: a random sign in {-1, +1} multiplies the magnitude.
        centre: added after the sign (1.0 for AWS's ``1 ± m`` enhance factors).
        integer: round the value to the nearest integer (Posterize's bits).
        floor: the smallest magnitude (before ``centre`` and sign); None: no floor.
    """

    low: float
    high: float
    signed: bool = False
    centre: float = 0.0
    integer: bool = False
    floor: float | None = None

    def value(self, bin, sign=1, n_bins: int = N_BINS):
        """Parameter for ``bin`` (int or int array) and ``sign`` (±1, ignored if unsigned).

        Returns a float64 scalar or array shaped like the broadcast of the inputs.
        """
        bins = np.asarray(bin)
        if np.any((bins < 0) | (bins >= n_bins)):
            raise ValueError(f"magnitude bin {bin!r} out of range [0, {n_bins})")
        magnitude = self.low + (self.high - self.low) * bins / (n_bins - 1)
        if self.integer:
            magnitude = np.round(magnitude)
        if self.floor is not None:
            magnitude = np.maximum(magnitude, self.floor)
        signs = np.asarray(sign) if self.signed else 1
        out = self.centre + signs * magnitude
        return float(out) if np.ndim(out) == 0 else out.astype(np.float64)

    def table(self, n_bins: int = N_BINS) -> np.ndarray:
        """float64[n_bins, 2]: values for sign -1 (column 0) and +1 (column 1) per bin."""
        bins = np.arange(n_bins)
        return np.stack([self.value(bins, -1, n_bins), self.value(bins, 1, n_bins)], axis=1)
