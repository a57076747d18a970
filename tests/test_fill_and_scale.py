"""The geometric fill level and the moderate magnitude range, on every backend.

``fill`` (0..255) is what geometric ops move in from outside the image: the reference
equals PIL's ``fillcolor``; the DALI stage and the kernels equal the reference.
``magnitude_scale`` moves every value towards its op's identity; the loader reports the
scaled values it applied.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo_batch, photos
from PIL import Image

from fastpolicy import OPS, Policy, reference, spaces
from fastpolicy.params import NO_OP, PolicyParams
from fastpolicy.sampling import complete

GEOMETRIC = [name for name, spec in OPS.items() if spec.kind == "affine"]
HEIGHT, WIDTH, BATCH = 37, 53, 20


def _geometric_params(seed: int) -> PolicyParams:
    space = spaces.adversarial()
    rng = np.random.default_rng(seed)
    op = np.array([[OPS[GEOMETRIC[i % len(GEOMETRIC)]].id, NO_OP] for i in range(BATCH)])
    return complete(op, rng.integers(5, 10, (BATCH, 2)), space, rng)


@pytest.mark.parametrize("fill", [0, 200])
@pytest.mark.parametrize("name", GEOMETRIC)
def test_reference_fill_equals_pil_fillcolor(name, fill):
    image = photos()["astronaut"][:57, :91]
    value = spaces.adversarial().value(name, 9, -1)
    matrix = OPS[name].reference.matrix(value, *image.shape[:2])
    if name == "Rotate":
        want = Image.fromarray(image).rotate(value, resample=Image.NEAREST, fillcolor=(fill,) * 3)
    else:
        want = Image.fromarray(image).transform(
            image.shape[1::-1], Image.AFFINE, tuple(np.ravel(matrix)[:6]), resample=Image.NEAREST, fillcolor=(fill,) * 3
        )
    got = reference.apply_value(name, image, value, fill=fill)
    np.testing.assert_array_equal(got, np.asarray(want))
    assert np.any(np.all(got == fill, axis=2)) and not np.array_equal(got, reference.apply_value(name, image, value))


def test_fill_outside_a_level_is_refused():
    with pytest.raises(ValueError, match="fill must be an integer level in 0..255"):
        reference.apply_value("Rotate", photos()["astronaut"][:8, :8], 30.0, fill=256)


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_kernels_fill_like_the_reference(grey):
    from fastpolicy.backends.kernel_stage import KernelPolicyStage

    images, params = photo_batch(BATCH, HEIGHT, WIDTH, grey), _geometric_params(1)
    stage = KernelPolicyStage.emulated()
    for fill in (0, 255):
        out = stage.apply(images, params, fill=fill)
        np.testing.assert_array_equal(out, reference.apply_batch(images, params, fill=fill))
    assert not np.array_equal(stage.apply(images, params, fill=0), stage.apply(images, params))


@pytest.mark.gpu
def test_cupy_kernels_fill_like_the_reference():
    import cupy

    from fastpolicy.backends.kernel_cuda import device_stage

    images, params = photo_batch(BATCH, HEIGHT, WIDTH), _geometric_params(2)
    out = device_stage(0).apply(cupy.asarray(images), params, fill=0).get()
    np.testing.assert_array_equal(out, reference.apply_batch(images, params, fill=0))


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_dali_fills_like_the_reference(grey):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.backends.dali_stage import DaliPolicyStage

    images, params = photo_batch(BATCH, HEIGHT, WIDTH, grey), _geometric_params(3)
    stage = DaliPolicyStage(BATCH, HEIGHT, WIDTH, channels=1 if grey else 3, fill=0)
    np.testing.assert_array_equal(stage.apply(images, params), reference.apply_batch(images, params, fill=0))


def test_scaled_values_move_towards_each_ops_identity():
    space = spaces.adversarial()
    ids = np.array([OPS[name].id for name in space.ops])
    rng = np.random.default_rng(0)
    op = np.stack([ids, np.full(len(ids), NO_OP)], axis=1)
    params = complete(op, np.full(op.shape, 9), space, rng)
    half = params.scaled(0.5)
    for i, name in enumerate(space.ops):
        spec, full, got = OPS[name], params.value[i, 0], half.value[i, 0]
        want = spec.identity + 0.5 * (full - spec.identity)
        assert got == (np.round(want) if spec.integer else pytest.approx(want)), name
    assert half.value[0, 0] == pytest.approx(params.value[0, 0] / 2)  # shear ±0.3 → ±0.15
    assert half.value[OPS["Posterize"].id, 0] == 6 and half.value[OPS["Solarize"].id, 0] == 128
    assert half.value[OPS["Contrast"].id, 0] == pytest.approx(1.45)  # 1.9 → 1 + 0.9 / 2
    np.testing.assert_array_equal(half.op, params.op)
    assert params.scaled(1.0) == params
    with pytest.raises(ValueError, match="scale must be in"):
        params.scaled(0)


def test_loader_applies_and_reports_fill_and_scale():
    pytest.importorskip("nvidia.dali")
    from fastpolicy.loader import Augment, Pipeline, PolicyDALILoader

    images = photo_batch(16, 28, 28, grey=True)[..., 0]
    policy = Policy([[("Rotate", 9), ("TranslateX", 9)]])
    common = dict(
        batch_size=8, M=2, device="cpu", output="uint8", pipeline=Pipeline(shuffle=False, seed=3), policies=policy
    )
    full = next(
        iter(PolicyDALILoader.from_arrays(images, np.zeros(16, int), augment=Augment(baseline="none"), **common))
    )
    moderate_augment = Augment(baseline="none", fill=0, magnitude_scale=0.5)
    moderate = next(iter(PolicyDALILoader.from_arrays(images, np.zeros(16, int), augment=moderate_augment, **common)))
    np.testing.assert_array_equal(moderate.params.value, full.params.scaled(0.5).value)
    originals = np.concatenate([images[:8], images[:8]])[..., None]
    want = reference.apply_batch(originals, moderate.params, fill=0)
    np.testing.assert_array_equal(moderate.images.permute(0, 2, 3, 1).numpy(), want)
    with pytest.raises(ValueError, match="magnitude_scale"):
        Augment(magnitude_scale=1.5)
    with pytest.raises(ValueError, match="fill"):
        Augment(fill=300)
