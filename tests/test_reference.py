"""Reference behaviour beyond PIL parity: input kept, batch == per-sample, errors, ops' meaning."""

import numpy as np
import pytest
from conftest import crop, photos

from fastpolicy import Policy, sample_policies
from fastpolicy.reference import apply_batch, apply_op, apply_value
from fastpolicy.reference.geometry import FILL, fixed_point, rotate, source_indices
from fastpolicy.registry import OPS


def _image(h=40, w=52):
    return crop(photos()["chelsea"], h, w)


@pytest.mark.parametrize("name", list(OPS))
def test_input_is_not_modified_and_output_is_new(name):
    image = _image()
    keep = image.copy()
    other = image[::-1].copy()
    space = next(iter(OPS[name].magnitudes))  # the adversarial space for the papers' ops
    out = apply_op(name, image, 9, sign=-1, rng=np.random.default_rng(0), other=other, space=space)
    assert np.array_equal(image, keep)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.shares_memory(out, image)


@pytest.mark.parametrize("name", [n for n, s in OPS.items() if s.magnitudes.get("adversarial") is not None])
def test_magnitude_changes_the_image(name):
    image = _image()
    lo = apply_op(name, image, 0, rng=np.random.default_rng(1), other=image[::-1].copy())
    hi = apply_op(name, image, 9, rng=np.random.default_rng(1), other=image[::-1].copy())
    assert not np.array_equal(lo, hi), f"{name}: bins 0 and 9 give the same image"


def test_geometric_semantics():
    image = _image(31, 45)
    # Translation by whole pixels is a shift with grey fill.
    out = apply_value("TranslateX", image, 5 / 45)
    assert np.array_equal(out[:, :-5], image[:, 5:]) and np.all(out[:, -5:] == FILL)
    out = apply_value("TranslateY", image, -3 / 31)
    assert np.array_equal(out[3:], image[:-3]) and np.all(out[:3] == FILL)
    # Zero shear, zero rotation are the identity.
    for name in ("ShearX", "ShearY", "Rotate"):
        assert np.array_equal(apply_value(name, image, 0.0), image)
    # Fixed-point rows match PIL's definition: row 0 of ShearX reads row 0 shifted by 0.
    rows, cols = source_indices((1.0, 0.3, 0.0, 0.0, 1.0, 0.0), 31, 45)
    assert np.array_equal(rows[0], np.arange(0, 1).repeat(45)) and cols[0, 0] == 0
    assert fixed_point(rotate(10.0, 31, 45)).dtype == np.int64


def test_cutout_box_and_fill():
    image = np.zeros((40, 50, 3), np.uint8)
    out = apply_value("Cutout", image, 0.2, center=(0.5, 0.5))
    ys, xs = np.nonzero(out[..., 0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (16, 23, 21, 28)  # side 8 = 0.2 * 40
    assert np.all(out[ys, xs] == 128)
    corner = apply_value("Cutout", image, 0.2, center=(0.0, 0.99))
    # centre (0, 49): rows -4..3 clipped to 0..3, columns 45..52 clipped to 45..49
    assert corner[:4, 45:].min() == 128 and corner.astype(bool).sum() == 4 * 5 * 3
    with pytest.raises(ValueError, match="outside"):
        apply_value("Cutout", image, 0.2, center=(1.0, 0.5))
    with pytest.raises(ValueError, match="centre"):
        apply_value("Cutout", image, 0.2)


def test_sample_pairing_needs_a_matching_partner():
    image = _image()
    with pytest.raises(ValueError, match="partner"):
        apply_value("SamplePairing", image, 0.3)
    with pytest.raises(ValueError, match="shape"):
        apply_value("SamplePairing", image, 0.3, other=image[:10])
    assert np.array_equal(apply_value("SamplePairing", image, 0.0, other=image[::-1].copy()), image)


def test_bad_images_are_rejected():
    with pytest.raises(TypeError, match="uint8"):
        apply_value("Invert", np.zeros((4, 4, 3), np.float32), 0)
    with pytest.raises(ValueError, match="HW"):
        apply_value("Invert", np.zeros((4, 4, 4), np.uint8), 0)
    with pytest.raises(ValueError, match="sign"):
        apply_op("Rotate", _image(), 3, sign=0)
    with pytest.raises(ValueError, match="bits"):
        apply_value("Posterize", _image(), 9)


def test_batch_equals_per_sample():
    rng = np.random.default_rng(7)
    images = np.stack([crop(photos()[p], 48, 64) for p in ("astronaut", "coffee", "chelsea", "china")])
    policies = [Policy.random(rng) for _ in range(3)]
    params = sample_policies(policies, 4, rng)
    batch = np.concatenate([images] * 3)
    out = apply_batch(batch, params)
    for i in range(params.n):
        expected = batch[i]
        for slot in range(params.k):
            op = int(params.op[i, slot])
            if op >= 0:
                expected = apply_value(
                    list(OPS)[op],
                    expected,
                    params.value[i, slot],
                    center=params.center[i, slot],
                    other=batch[params.partner[i, slot]],
                )
        assert np.array_equal(out[i], expected), i
    with pytest.raises(ValueError, match="12 samples but the batch has 4"):
        apply_batch(images, params)


def test_batch_skips_op_minus_one():
    image = _image()[None]
    params = Policy([[("Invert", 0, 0.0)]]).sample(1, np.random.default_rng(0))
    assert params.op[0, 0] == -1
    assert np.array_equal(apply_batch(image, params), image)
