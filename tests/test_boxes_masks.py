"""Boxes, masks and key points through PolicyAugment: they follow each image's geometric ops.

The oracle is torchvision's own AutoAugment op application (``_apply_image_or_video_transform``,
which dispatches ``F.affine``/``F.rotate`` on boxes and masks), given each op's value in
torchvision's units; masks are also checked to land exactly where the image's pixels do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import photos
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from fastpolicy import OPS
from fastpolicy.backends.pil_stage import Op
from fastpolicy.policy import Policy
from fastpolicy.transforms import PolicyAugment

HEIGHT, WIDTH = 48, 64
TORCHVISION_AA = v2.RandAugment()  # its _apply_image_or_video_transform holds torchvision's ops
GEOMETRIC = [name for name, spec in OPS.items() if spec.kind == "affine"]
FORMATS = list(tv_tensors.BoundingBoxFormat)


def _theirs(name: str, value: float) -> float:
    """Our value in torchvision's units: shear and degrees as they are; translations in the
    whole pixels PIL moves the image by (the shift rounded half up), the other way
    (docs/policies.md)."""
    if name.startswith("Translate"):
        return -math.floor(value * (WIDTH if name.endswith("X") else HEIGHT) + 0.5)
    return value


def _values(name: str) -> list[float]:
    """Both signs of a small and a large value of ``name``; translations by whole pixels."""
    if name.startswith("Translate"):
        side = WIDTH if name.endswith("X") else HEIGHT
        return [k / side for k in (3, -3, 17, -17)]
    large = OPS[name].magnitude("adversarial").value(9, 1)
    return [large / 4, -large / 4, large, -large]


def _boxes(fmt) -> tv_tensors.BoundingBoxes:
    """Six boxes inside the canvas in format ``fmt`` (rotated formats: turned by up to ±30°)."""
    rng = np.random.default_rng(7)
    corners = np.sort(rng.uniform(0, 1, (6, 2, 2)), axis=1) * [WIDTH, HEIGHT]  # [box, (min, max), (x, y)]
    xyxy = torch.tensor(corners.reshape(6, 4), dtype=torch.float32)
    if not tv_tensors.is_rotated_bounding_format(fmt):
        boxes = tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(HEIGHT, WIDTH))
    else:
        angles = torch.tensor(rng.uniform(-30, 30, (6, 1)), dtype=torch.float32)
        xywhr = torch.cat([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2], angles], 1)
        boxes = tv_tensors.BoundingBoxes(xywhr, format="XYWHR", canvas_size=(HEIGHT, WIDTH))
    return v2.functional.convert_bounding_box_format(boxes, new_format=fmt)


def _apply(transform: PolicyAugment, item, name: str, value: float):
    return transform.transform(item, {"ops": [[Op(OPS[name].id, value, 0.5, 0.5, 0)]]})


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@pytest.mark.parametrize("name", GEOMETRIC)
def test_boxes_follow_each_geometric_op_as_torchvision_moves_them(name, fmt):
    transform = PolicyAugment("autoaugment")
    boxes = _boxes(fmt)
    for value in _values(name):
        ours = _apply(transform, boxes, name, value)
        theirs = TORCHVISION_AA._apply_image_or_video_transform(
            boxes, name, _theirs(name, value), InterpolationMode.NEAREST, {tv_tensors.BoundingBoxes: None}
        )
        assert type(ours) is tv_tensors.BoundingBoxes and ours.format == fmt
        assert tuple(ours.canvas_size) == (HEIGHT, WIDTH)
        torch.testing.assert_close(ours.as_subclass(torch.Tensor), theirs.as_subclass(torch.Tensor), atol=2e-3, rtol=0)


@pytest.mark.parametrize("name", GEOMETRIC)
def test_boxes_enclose_the_pixels_the_image_moved(name):
    """A white rectangle on black, boxed by its pixel edges: after each op (fractional
    translations included) the box holds every white pixel of the moved image, tightly (a
    translation exactly; shear and rotation within a pixel of PIL's nearest sampling)."""
    transform = PolicyAugment("autoaugment", fill=0)
    image = torch.zeros(1, HEIGHT, WIDTH, dtype=torch.uint8)
    image[0, 14:30, 20:41] = 255
    box = tv_tensors.BoundingBoxes([[20, 14, 41, 30]], format="XYXY", canvas_size=(HEIGHT, WIDTH))
    values = _values(name) + ([0.13, -0.2207, 0.0078] if name.startswith("Translate") else [])
    for value in values:
        moved = _apply(transform, tv_tensors.Image(image), name, value)[0]
        rows, cols = torch.nonzero(moved, as_tuple=True)
        pixels = torch.tensor([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=torch.float32)
        ours = _apply(transform, box, name, value)[0]
        slack = 0 if name.startswith("Translate") else 1.0
        assert torch.all(ours[:2] <= pixels[:2] + slack) and torch.all(ours[2:] >= pixels[2:] - slack), (
            value,
            ours,
            pixels,
        )
        assert torch.all(ours[:2] >= pixels[:2] - slack) and torch.all(ours[2:] <= pixels[2:] + slack), (
            value,
            ours,
            pixels,
        )


@pytest.mark.parametrize("name", GEOMETRIC)
def test_masks_land_where_the_image_pixels_do_and_as_torchvision_moves_them(name):
    """A mask equal to the image's pixels comes out equal to the image's output (fill 0 both), in
    every dtype; torchvision's grid-sampled mask agrees on ≥ 99% of the pixels."""
    image = torch.from_numpy(np.ascontiguousarray(photos()["camera_grey"][::8, ::8][:HEIGHT, :WIDTH]))[None]
    transform = PolicyAugment("autoaugment", fill=0)
    for dtype in (torch.uint8, torch.int64, torch.bool):
        mask = tv_tensors.Mask(image[0].to(dtype) if dtype is not torch.bool else image[0] > 100)
        for value in _values(name):
            moved = _apply(transform, tv_tensors.Image(image), name, value)[0]
            ours = _apply(transform, mask, name, value)
            assert type(ours) is tv_tensors.Mask and ours.dtype == dtype
            expected = moved.to(dtype) if dtype is not torch.bool else moved > 100
            assert torch.equal(ours.as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor)), (value, dtype)
            theirs = TORCHVISION_AA._apply_image_or_video_transform(
                mask, name, _theirs(name, value), InterpolationMode.NEAREST, {tv_tensors.Mask: 0}
            )
            assert (ours == theirs).float().mean() >= 0.99, (value, dtype)


@pytest.mark.parametrize("name", ["Equalize", "Solarize", "Color", "Cutout", "SamplePairing", "Invert"])
def test_colour_and_special_ops_leave_boxes_masks_and_key_points_as_they_are(name):
    transform = PolicyAugment("autoaugment")
    boxes = _boxes("XYXY")
    mask = tv_tensors.Mask(torch.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 5)
    points = tv_tensors.KeyPoints([[3.0, 4.0], [40.5, 20.25]], canvas_size=(HEIGHT, WIDTH))
    for item in (boxes, mask, points):
        out = _apply(transform, item, name, 0.2 if name in ("Cutout", "SamplePairing") else 100.0)
        assert type(out) is type(item) and torch.equal(out, item)
        assert out is not item  # a copy, as for images


def test_key_points_follow_as_torchvision_moves_them():
    transform = PolicyAugment("autoaugment")
    points = tv_tensors.KeyPoints([[3.0, 4.0], [40.5, 20.25], [60.0, 47.0]], canvas_size=(HEIGHT, WIDTH))
    for name in GEOMETRIC:
        for value in _values(name):
            ours = _apply(transform, points, name, value)
            theirs = TORCHVISION_AA._apply_image_or_video_transform(
                points, name, _theirs(name, value), InterpolationMode.NEAREST, {tv_tensors.KeyPoints: None}
            )
            torch.testing.assert_close(
                ours.as_subclass(torch.Tensor), theirs.as_subclass(torch.Tensor), atol=2e-3, rtol=0
            )


GEOMETRIC_POLICY = Policy([[("Rotate", 9), ("ShearX", 6)], [("TranslateY", 7), ("ShearY", 3)], [("TranslateX", 8)]])


@pytest.mark.parametrize("shape", ["dict", "tuple"])
def test_a_detection_sample_moves_together(shape):
    """A torchvision v2 sample, as a dict or as (image, target): the image equals what the same
    generator gives the image alone, the mask lands on the image's pixels, the boxes move as
    torchvision moves them under the same ops, and labels pass through."""
    grey = torch.from_numpy(np.ascontiguousarray(photos()["camera_grey"][::8, ::8][:HEIGHT, :WIDTH]))[None]
    image = tv_tensors.Image(grey)
    boxes, mask = _boxes("CXCYWH"), tv_tensors.Mask(grey[0].clone())
    moved_any = False
    for seed in range(12):
        transform = PolicyAugment(GEOMETRIC_POLICY, fill=0, generator=torch.Generator().manual_seed(seed))
        alone = PolicyAugment(GEOMETRIC_POLICY, fill=0, generator=torch.Generator().manual_seed(seed))(image)
        ops = PolicyAugment(GEOMETRIC_POLICY, generator=torch.Generator().manual_seed(seed)).draw(1)[0]
        if shape == "dict":
            out = transform({"image": image, "boxes": boxes, "masks": mask, "labels": torch.tensor([1, 2])})
            out_image, out_boxes, out_mask, labels = out["image"], out["boxes"], out["masks"], out["labels"]
        else:
            out_image, target = transform(image, {"boxes": boxes, "masks": mask, "labels": torch.tensor([1, 2])})
            out_boxes, out_mask, labels = target["boxes"], target["masks"], target["labels"]
        assert torch.equal(out_image, alone) and torch.equal(out_mask.as_subclass(torch.Tensor), alone[0])
        expected = boxes
        for op in ops:
            name = list(OPS)[op.op]
            expected = TORCHVISION_AA._apply_image_or_video_transform(
                expected, name, _theirs(name, op.value), InterpolationMode.NEAREST, {tv_tensors.BoundingBoxes: None}
            )
        torch.testing.assert_close(
            out_boxes.as_subclass(torch.Tensor), expected.as_subclass(torch.Tensor), atol=2e-3, rtol=0
        )
        assert torch.equal(labels, torch.tensor([1, 2]))
        moved_any |= not torch.equal(out_boxes, boxes)
    assert moved_any


def test_boxes_and_masks_refused_where_they_cannot_follow_one_image():
    transform = PolicyAugment("autoaugment")
    image = tv_tensors.Image(torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8))
    boxes, mask = _boxes("XYXY"), tv_tensors.Mask(torch.zeros(HEIGHT, WIDTH, dtype=torch.uint8))
    with pytest.raises(TypeError, match="needs its image"):
        transform({"boxes": boxes, "masks": mask})
    with pytest.raises(ValueError, match="a batch of 2"):
        transform(tv_tensors.Image(torch.zeros(2, 3, HEIGHT, WIDTH, dtype=torch.uint8)), boxes)
    with pytest.raises(ValueError, match="2 images"):
        transform(image, image, boxes)
    with pytest.raises(ValueError, match="size 40x64 cannot follow an image of 48x64"):
        transform(image, tv_tensors.Mask(torch.zeros(40, WIDTH, dtype=torch.uint8)))
    small = tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(HEIGHT, 60))
    with pytest.raises(ValueError, match="BoundingBoxes of size 48x60"):
        transform(image, small)
