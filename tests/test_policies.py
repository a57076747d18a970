"""Standard policies against torchvision's (the oracle): tables, magnitudes, ops, sampling."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
from conftest import photos
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from fastpolicy import OPS, reference
from fastpolicy.params import NO_OP
from fastpolicy.policies import (
    RandAugment,
    TrivialAugmentWide,
    autoaugment,
    randaugment,
    resolve,
    sampler_from_dict,
    trivialaugment_wide,
)
from fastpolicy.sampling import sample_policies
from fastpolicy.spaces import get_space

TORCHVISION = {
    "autoaugment": v2.AutoAugment(),
    "randaugment": v2.RandAugment(),
    "trivialaugment_wide": v2.TrivialAugmentWide(),
}
ENUMS = {
    "imagenet": v2.AutoAugmentPolicy.IMAGENET,
    "cifar10": v2.AutoAugmentPolicy.CIFAR10,
    "svhn": v2.AutoAugmentPolicy.SVHN,
}


@pytest.mark.parametrize("dataset", list(ENUMS))
def test_autoaugment_tables_equal_torchvisions(dataset):
    policy = autoaugment(dataset)
    table = v2.AutoAugment(ENUMS[dataset])._policies
    assert len(policy.sub_policies) == len(table) == 25
    for sub, row in zip(policy.sub_policies, table):
        assert [(c.op, c.prob) for c in sub] == [(op, p) for op, p, _ in row]
        for choice, (op, _, magnitude) in zip(sub, row):
            has_magnitude = OPS[op].magnitude("autoaugment") is not None
            assert has_magnitude == (magnitude is not None)
            if has_magnitude:
                assert choice.bin == magnitude


DALI_POLICIES = {"reduced_imagenet": "get_reduced_image_net_policy", "reduced_cifar10": "get_reduced_cifar10_policy"}


def _dali_values(augmentation, n_bins: int) -> np.ndarray | None:
    """float64[n_bins]: a DALI augmentation's parameter per bin, in fastpolicy's units (None:
    no magnitude); Posterize's mask → bits kept, read through DALI's own mask function."""
    from nvidia.dali.auto_aug import augmentations

    if augmentation.name == "posterize":
        assert augmentation.mag_to_param is augmentations.poster_mask_uint8
        low, high = augmentations.posterize.mag_range  # the default the policies restate
        masks = [augmentations.poster_mask_uint8(m) for m in np.linspace(low, high, n_bins, dtype=np.float32)]
        return np.array([bin(int(mask)).count("1") for mask in masks], np.float64)
    magnitudes = augmentation._get_magnitudes(n_bins)
    return None if magnitudes is None else magnitudes.astype(np.float64)


@pytest.mark.parametrize("dataset", list(DALI_POLICIES))
def test_reduced_policies_equal_dalis(dataset):
    """DALI's reduced_image_net / reduced_cifar10 (``shape=`` form): same sub-policies, ops,
    probabilities, bins, signs and per-bin values; DALI omits the probability-0 ops."""
    from nvidia.dali.auto_aug import auto_augment

    make = getattr(auto_augment, DALI_POLICIES[dataset])
    theirs = make(use_shape=True) if dataset != "reduced_imagenet" else make()
    ours = autoaugment(dataset)
    n_bins = theirs.num_magnitude_bins
    assert ours.space.n_bins == n_bins == 11
    assert len(ours.sub_policies) == len(theirs.sub_policies) == 25
    for sub, row in zip(ours.sub_policies, theirs.sub_policies):
        kept = [c for c in sub if c.prob > 0]
        assert len(kept) == len(row)
        for choice, (augmentation, prob, b) in zip(kept, row):
            op = "".join(word.capitalize() for word in augmentation.name.split("_"))
            assert (choice.op, choice.prob) == (op, prob)
            expected = _dali_values(augmentation, n_bins)
            magnitude = ours.space.magnitude(op)
            assert (expected is None) == (magnitude is None) == (b is None), op
            if magnitude is None:
                continue
            assert choice.bin == b and magnitude.signed == augmentation.randomly_negate, op
            values = [ours.space.value(op, k, 1) for k in range(n_bins)]
            np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-5, err_msg=op)


@pytest.mark.parametrize("space", list(TORCHVISION))
def test_standard_spaces_hold_torchvisions_ops_and_magnitudes(space):
    """Every bin's value equals torchvision's magnitude for that bin, in our units."""
    ours = get_space(space)
    theirs = TORCHVISION[space]._AUGMENTATION_SPACE
    assert set(ours.ops) | {"Identity"} == set(theirs) | {"Identity"}
    height = width = 224
    for op in ours.ops:
        make, signed = theirs[op]
        magnitudes = make(ours.n_bins, height, width)
        magnitude = ours.magnitude(op)
        assert (magnitudes is None) == (magnitude is None)
        if magnitude is None:
            continue
        assert magnitude.signed == signed
        for b in range(ours.n_bins):
            expected = float(magnitudes[b])
            value = ours.value(op, b, 1)
            if op.startswith("Translate"):
                expected /= width  # pixels → a fraction of the side
            elif op == "Solarize":
                expected *= 255  # a fraction of the maximum → a level
            elif magnitude.centre == 1.0:
                expected += 1  # enhance: 1 + m
            assert value == pytest.approx(expected, rel=1e-6, abs=1e-6), (op, b)  # torch: float32


def _pil_oracle(space: str, op: str, image: np.ndarray, magnitude: float) -> np.ndarray:
    transform = TORCHVISION[space]
    out = transform._apply_image_or_video_transform(
        PIL.Image.fromarray(image), op, magnitude, InterpolationMode.NEAREST, transform._fill
    )
    return np.asarray(out)


@pytest.mark.parametrize("space", list(TORCHVISION))
def test_standard_ops_give_torchvisions_pil_pixels(space):
    """On a real photo, our reference at every tested bin's value equals torchvision's PIL path
    given the same value in its units (the magnitudes themselves are checked above, to
    float32); translations up to their documented convention (opposite sign, whole pixels)."""
    image = np.ascontiguousarray(photos()["astronaut"][:180, :224])
    ours_space = get_space(space)
    height, width = image.shape[:2]
    for op in ours_space.ops:
        magnitude = ours_space.magnitude(op)
        for b in sorted({1, ours_space.n_bins // 2, ours_space.n_bins - 1}):
            for sign in (1, -1) if magnitude is not None and magnitude.signed else (1,):
                value = ours_space.value(op, b, sign)
                theirs = value  # shear, degrees, bits
                if op.startswith("Translate"):
                    side = width if op.endswith("X") else height
                    theirs = -value * side  # pixels, the other way
                    if int(abs(theirs)) != round(abs(theirs)):
                        continue  # PIL shifts by the nearest whole pixel, torchvision truncates
                elif op == "Solarize":
                    theirs = value / 255
                elif magnitude is not None and magnitude.centre == 1.0:
                    theirs = value - 1
                expected = _pil_oracle(space, op, image, theirs)
                got = reference.apply_value(op, image, value, fill=0)
                assert np.array_equal(got, expected), (op, b, sign)


def test_randaugment_draws_num_ops_uniform_ops_at_one_bin():
    policy = RandAugment(num_ops=3, magnitude=5)
    op, bins = policy.choose(28_000, np.random.default_rng(0))
    assert op.shape == bins.shape == (28_000, 3)
    entries = [NO_OP] + [OPS[name].id for name in policy.space.ops]
    counts = np.array([np.sum(op == e) for e in entries])
    assert counts.sum() == op.size
    expected = op.size / len(entries)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # uniform over 13 ops + Identity
    with_magnitude = np.isin(op, [OPS[n].id for n in policy.space.ops if policy.space.magnitude(n) is not None])
    assert np.all(bins[with_magnitude] == 5) and np.all(bins[~with_magnitude] == -1)
    assert OPS["Invert"].id not in op  # torchvision's RandAugment has no Invert


def test_trivialaugment_draws_one_op_at_a_uniform_bin():
    op, bins = TrivialAugmentWide().choose(31_000, np.random.default_rng(1))
    assert op.shape == (31_000, 1)
    drawn = bins[bins >= 0]
    counts = np.bincount(drawn, minlength=31)
    assert len(counts) == 31 and np.all(np.abs(counts - len(drawn) / 31) < 5 * np.sqrt(len(drawn) / 31))


def test_standard_policies_round_trip_and_resolve(tmp_path):
    for policy in (randaugment(1, 30), trivialaugment_wide(), autoaugment("svhn")):
        assert sampler_from_dict(policy.to_dict()) == policy
        path = tmp_path / "policy.json"
        policy.save(path)
        assert resolve(str(path)) == policy
    assert resolve("randaugment") == RandAugment()
    assert resolve("autoaugment:cifar10") == autoaugment("cifar10")
    assert resolve("autoaugment:reduced_imagenet") == autoaugment("reduced_imagenet")
    assert sampler_from_dict(autoaugment("reduced_cifar10").to_dict()).space.name == "dali"
    with pytest.raises(FileNotFoundError, match="neither a standard policy"):
        resolve("randaugmnet")
    with pytest.raises(ValueError, match="magnitude"):
        RandAugment(magnitude=31)
    with pytest.raises(ValueError, match="num_ops"):
        RandAugment(num_ops=-1)  # 0 is torchvision's "nothing applied"
    with pytest.raises(ValueError, match="unknown AutoAugment policy"):
        autoaugment("mnist")


def test_standard_policies_sample_through_the_one_sampler():
    params = sample_policies([autoaugment(), randaugment(), trivialaugment_wide()], 8, np.random.default_rng(2))
    assert params.n == 24 and params.k == 2
    assert np.all(params.op[16:, 1] == NO_OP)  # TrivialAugment: one op, padded
    assert np.array_equal(params.policy, np.repeat(np.arange(3), 8))
