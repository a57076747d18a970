"""Every op's NumPy reference against AutoAugment's PIL calls, on real photos.

The bound is the op's registered tolerance (bit-exact for all 16 ops today); sizes
include odd ones and 32×32; every bin of every space the op is in, both signs.
"""

import numpy as np
import pytest
from conftest import crop, op_value, photos
from pil_oracle import pil_apply

from fastpolicy.magnitude import SPACE_BINS
from fastpolicy.reference import apply_value
from fastpolicy.registry import OPS

SIZES = [(32, 32), (57, 91), (224, 224), (None, None)]
PHOTOS = ["astronaut", "china", "camera_grey"]


def _partner(image: np.ndarray) -> np.ndarray:
    other = photos()["coffee"] if image.shape[2] == 3 else photos()["camera_grey"][::-1, ::-1, None]
    return np.ascontiguousarray(np.resize(other, image.shape))


def assert_within(name: str, got: np.ndarray, want: np.ndarray, context: str) -> None:
    tol = OPS[name].tolerance
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert got.shape == want.shape and got.dtype == np.uint8, context
    assert diff.max() <= tol.max_abs and (diff > 0).mean() <= (tol.fraction if tol.max_abs else 0.0), (
        f"{name} {context}: max |diff| {diff.max()}, {(diff > 0).mean():.4%} of values differ; bound {tol}"
    )


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "full" if s[0] is None else f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(OPS))
def test_reference_matches_pil(name, size, photo):
    image = crop(photos()[photo], *size)
    if image.ndim == 2:
        image = image[..., None]
    rng = np.random.default_rng(hash((name, size, photo)) % 2**32)
    other = _partner(image)
    for space, magnitude in OPS[name].magnitudes.items():
        n_bins = min(SPACE_BINS[space], 11)  # (31-bin spaces: their values at 10 or 11 positions)
        for bin_ in range(n_bins):
            for sign in (-1, 1) if magnitude is not None and magnitude.signed else (1,):
                value = 0.0 if magnitude is None else magnitude.value(bin_, sign, n_bins)
                center = rng.random(2)
                got = apply_value(name, image, value, center=center, other=other)
                want = pil_apply(name, image, value, center=center, other=other)
                assert_within(name, got, want, f"{photo} {image.shape} {space} bin {bin_} sign {sign}")


@pytest.mark.parametrize("name", list(OPS))
def test_grayscale_2d_input(name):
    image = crop(photos()["camera_grey"], 61, 47)
    value = op_value(name, 7)
    got = apply_value(name, image, value, center=(0.5, 0.5), other=image[::-1].copy())
    want = pil_apply(name, image, value, center=(0.5, 0.5), other=image[::-1].copy())
    assert got.shape == image.shape
    assert_within(name, got, want, "2-D grey 61x47")


@pytest.mark.parametrize("level", [0, 77, 255])
@pytest.mark.parametrize("name", list(OPS))
def test_constant_images(name, level):
    image = np.full((33, 35, 3), level, np.uint8)
    value = op_value(name, 4)
    with np.errstate(all="raise"):  # no division by zero in autocontrast / equalize
        got = apply_value(name, image, value, center=(0.2, 0.7), other=image)
    want = pil_apply(name, image, value, center=(0.2, 0.7), other=image)
    assert_within(name, got, want, f"constant {level}")
    if name in ("AutoContrast", "Equalize"):
        assert np.array_equal(got, image)
