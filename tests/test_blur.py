"""GaussianBlur (timm's 3-Augment op): PIL's three box passes per axis, exactly, on every stage.

* the reference equals ``ImageFilter.GaussianBlur`` at deviations from 0 to 25 pixels (whole
  box radii 0 to 24), on photos, grey images and images narrower than the box; the array form
  of the box weights equals the scalar one;
* the kernel stages (native, emulated) equal the reference with the box in either slot, the
  loader's copies read in place, a normalized NCHW output (the blur's extra copy-out) and the
  fused stage (which runs such a batch slot by slot);
* the DALI stage equals it up to its widest box, and refuses a wider one by value;
* a deviation outside [0, 1000] pixels is refused, naming it, by the reference and the PIL,
  native and DALI stages;
* a deviation drawn per image adds no op-table entry per image (timm's ``3a``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import crop, photos
from PIL import Image, ImageFilter

from fastpolicy.backends.kernel_stage import KernelPolicyStage
from fastpolicy.params import PolicyParams
from fastpolicy.reference import blur
from fastpolicy.reference.apply import apply_batch
from fastpolicy.registry import OPS

RADII = [0.0, 1e-9, 0.01, 0.05, 0.1, 0.5, 1.0, 1.37, 2.0, 2.45, 3.3, 5.4, 7.0, 25.0]
"""Deviations (pixels): zero, below float32's resolution, timm's range, then boxes of r = 2 … 24."""

SHAPES = [(61, 80, 3), (45, 31, 1), (5, 3, 3), (1, 7, 3), (7, 1, 1)]


def _pil(image: np.ndarray, radius: float) -> np.ndarray:
    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
    out = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)))
    return out.reshape(image.shape)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_reference_is_pils_gaussian_blur(shape):
    height, width, channels = shape
    image = crop(photos()["astronaut" if channels == 3 else "camera_grey"], height, width)
    image = image.reshape(height, width, channels)
    for radius in RADII:
        np.testing.assert_array_equal(blur.gaussian_blur(image, radius), _pil(image, radius), err_msg=f"{radius}")


def test_box_weights_add_to_one_and_their_array_form_is_the_scalar_one():
    values = np.concatenate([[0.0, 1e-30, blur.deviation_below(1), blur.deviation_below(4), 1000.0],
                             np.random.default_rng(0).uniform(0, 12, 400)])  # fmt: skip
    table = blur.box_weights_of(values)
    for value, (r, ww, fw) in zip(values, table):
        assert (r, ww, fw) == blur.box_weights(blur.box_radius(value))
        assert 2**24 - (2 * r + 2) <= (2 * r + 1) * ww + 2 * fw <= 2**24  # truncations only
    # sqrt((r + 1)(r + 2)) is where the whole radius reaches r + 1
    for r in range(6):
        edge = blur.deviation_below(r)
        assert int(blur.box_radius(edge * (1 - 1e-6))) == r and int(blur.box_radius(edge * (1 + 1e-6))) == r + 1
    assert blur.box_radius(2.0) == pytest.approx(1.375, abs=1e-6)  # sigma² = 4/3: l = 1, a = 0.375


def _params(ops: list[list[tuple[str, float] | None]]) -> PolicyParams:
    n, k = len(ops), len(ops[0])
    fields = PolicyParams.skipped_fields(n, k)
    for i, row in enumerate(ops):
        for slot, entry in enumerate(row):
            if entry is not None:
                fields["op"][i, slot], fields["value"][i, slot] = OPS[entry[0]].id, entry[1]
    return PolicyParams(**fields, policy=np.zeros(n, np.int64), version=0)


MIXED = [
    [("GaussianBlur", 0.5), ("Color", 0.3)],
    [("Rotate", 10.0), ("GaussianBlur", 1.7)],
    [("GaussianBlur", 2.0), ("GaussianBlur", 0.1)],
    [None, ("GaussianBlur", 5.4)],  # r = 4: the general path
    [("Equalize", 0.0), None],
    [("GaussianBlur", 0.05), ("Sharpness", 1.5)],
]


@pytest.fixture(scope="module")
def kernel_stages():
    return {
        "native": KernelPolicyStage.native(),
        "native-fused": KernelPolicyStage.native(fused=True),
        "emulated": KernelPolicyStage.emulated(),
    }


@pytest.mark.parametrize("shape", [(40, 56, 3), (23, 17, 1), (5, 3, 3), (1, 7, 3)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("stage", ["native", "native-fused", "emulated"])
def test_kernel_stages_blur_as_the_reference(kernel_stages, stage, shape):
    height, width, channels = shape
    base = crop(photos()["astronaut" if channels == 3 else "camera_grey"], height, width).reshape(shape)
    images = np.stack([np.roll(base, 3 * i, axis=1) for i in range(len(MIXED))])
    params = _params(MIXED)
    want = apply_batch(images, params)
    run = kernel_stages[stage]
    np.testing.assert_array_equal(run.apply(images, params), want)
    planar = run.apply(images, params, output="float32", mean=np.zeros(channels), inv_std=np.ones(channels))
    np.testing.assert_array_equal(planar, want.transpose(0, 3, 1, 2).astype(np.float32))


def test_the_loaders_copies_are_blurred_in_place(kernel_stages):
    base = crop(photos()["chelsea"], 30, 44)
    images = np.stack([base, np.flipud(base).copy(), np.fliplr(base).copy()])  # N = 3 images
    copies = np.ascontiguousarray(np.repeat(images[:, None], 2, axis=1))  # [N, M = 2, H, W, C]
    params = _params([[("GaussianBlur", r), None] for r in (0.3, 1.1, 2.0, 0.7, 1.6, 0.0)])  # sample m·N + n
    want = apply_batch(np.concatenate([images, images]), params)
    for name in ("native", "emulated"):
        np.testing.assert_array_equal(kernel_stages[name].apply(copies, params), want, err_msg=name)


def test_dali_stage_blurs_as_the_reference_up_to_its_widest_box():
    pytest.importorskip("nvidia.dali")
    from fastpolicy.backends.dali_stage import BOX_RADIUS, DaliPolicyStage

    base = crop(photos()["astronaut"], 29, 41)
    images = np.stack([np.roll(base, 5 * i, axis=0) for i in range(len(MIXED))])
    params = _params(MIXED)
    stage = DaliPolicyStage(len(MIXED), 29, 41, slots=2)
    np.testing.assert_array_equal(stage.apply(images, params), apply_batch(images, params))
    assert int(blur.box_radius(5.4)) == BOX_RADIUS
    wide = _params([[("GaussianBlur", 5.5), None]] * len(MIXED))
    with pytest.raises(ValueError, match="'GaussianBlur' at value 5.5: its box radius 5 exceeds the 'dali' stage's 4"):
        stage.apply(images, wide)


@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan"), 1e12])
def test_a_deviation_outside_the_range_is_refused_everywhere(kernel_stages, value):
    from fastpolicy.backends.pil_stage import Op, PilStage

    image = crop(photos()["astronaut"], 8, 8)
    message = f"deviation must be in \\[0, 1000\\] pixels, got {value!r}".replace("(", "\\(")
    params = _params([[("GaussianBlur", value)]])
    with pytest.raises(ValueError, match=message):
        blur.gaussian_blur(image, value)
    with pytest.raises(ValueError, match=message):
        kernel_stages["native"].apply(image[None], params)
    with pytest.raises(ValueError, match=message):
        PilStage().apply_ops(Image.fromarray(image), [Op(OPS["GaussianBlur"].id, value, 0.0, 0.0, 0)])
    dali = pytest.importorskip("fastpolicy.backends.dali_stage")
    with pytest.raises(ValueError, match=message):
        dali.DaliPolicyStage(1, 8, 8, slots=1).apply(image[None], params)


def test_a_deviation_drawn_per_image_adds_no_table_entry():
    from fastpolicy.backends.kernel_pack import op_table, pack_kernels
    from fastpolicy.timm_strings import parse

    rng = np.random.default_rng(0)
    before = None
    for step in range(20):
        params = parse("3a").sample(64, rng)
        packed = pack_kernels(params, 24, 28)
        if step == 2:
            before = (len(op_table(24, 28)._op), packed.buffer.nbytes)
    assert (len(op_table(24, 28)._op), packed.buffer.nbytes) == before


@pytest.mark.gpu
def test_the_cupy_stage_blurs_as_the_reference():
    """The CUDA build of ``fp_blur`` (a GPU check): mixed slots, the loader's copies read in
    place, a uint8 channels-last output and a normalized float32 NCHW one (the copy-out)."""
    from fastpolicy.backends.protocol import finish
    from fastpolicy.backends.stage import OutputSpec, make_stage

    base = crop(photos()["astronaut"], 40, 56)
    images = np.stack([np.roll(base, 3 * i, axis=1) for i in range(len(MIXED))])
    params = _params(MIXED)
    want = torch.from_numpy(apply_batch(images, params))
    stage = make_stage("cupy", "gpu", max_batch=2 * len(MIXED), height=40, width=56, slots=2)
    for spec in (
        OutputSpec("uint8", "channels_last"),
        OutputSpec("float32", "nchw", (0.5, 0.4, 0.3), (0.2, 0.3, 0.25)),
    ):
        got = stage.apply(torch.from_numpy(images).cuda(), params, spec)
        assert torch.equal(got.cpu(), finish(want, spec)), spec
    copies = np.ascontiguousarray(np.repeat(images[:3, None], 2, axis=1))  # [N = 3, M = 2, H, W, C]
    blurs = _params([[("GaussianBlur", r), None] for r in (0.3, 1.1, 2.0, 0.7, 1.6, 0.0)])
    want = torch.from_numpy(apply_batch(np.concatenate([images[:3], images[:3]]), blurs))
    got = stage.apply(torch.from_numpy(copies).cuda(), blurs, OutputSpec("uint8", "channels_last"))
    assert torch.equal(got.cpu(), finish(want, OutputSpec("uint8", "channels_last")))
