"""PolicyAugment: torchvision v2 pipelines, DataLoader workers, equality with the reference."""

from __future__ import annotations

import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import photo_batch, photos
from torchvision import tv_tensors
from torchvision.transforms import v2

from fastpolicy import AWSDistribution, Policy, PolicySchedule, reference
from fastpolicy.backends.pil_stage import Op
from fastpolicy.policies import autoaugment
from fastpolicy.registry import BUILTIN_OPS, OP_NAMES
from fastpolicy.transforms import PolicyAugment


def _reference(images_nhwc: np.ndarray, ops, fill) -> np.ndarray:
    """The reference applying each image's drawn ops (partners: the batch as it came in)."""
    out = images_nhwc.copy()
    for i, image_ops in enumerate(ops):
        for op in image_ops:
            out[i] = reference.apply_value(
                OP_NAMES[op.op], out[i], op.value, center=(op.cy, op.cx), other=images_nhwc[op.partner], fill=fill
            )
    return out


def _expected(transform: PolicyAugment, images_nhwc: np.ndarray, seed: int, fill=None):
    """The reference on the ops the transform draws from torch's generator at ``seed``."""
    torch.manual_seed(seed)
    ops = transform.draw(len(images_nhwc))
    return _reference(images_nhwc, ops, transform.default_fill if fill is None else fill), ops


def test_pil_in_pil_out_equals_the_reference_for_the_chosen_ops():
    image = np.ascontiguousarray(photos()["chelsea"][:120, :160])
    transform = PolicyAugment(Policy([[("Rotate", 7), ("Posterize", 3)], [("Equalize", 0), ("ShearX", 9)]]))
    for seed in range(6):
        expected, ops = _expected(transform, image[None], seed)
        assert len(ops[0]) == 2
        torch.manual_seed(seed)
        out = transform(PIL.Image.fromarray(image))
        assert isinstance(out, PIL.Image.Image) and out.mode == "RGB" and out.size == (160, 120)
        assert np.array_equal(np.asarray(out), expected[0])
        # and each op is the reference's apply_op at its bin (and sign) in the adversarial space
        step = image
        for op in ops[0]:
            name = OP_NAMES[op.op]
            bin_ = 7 if name == "Rotate" else 3 if name == "Posterize" else 0 if name == "Equalize" else 9
            sign = -1 if op.value < 0 else 1
            step = reference.apply_op(name, step, bin_, sign)  # AutoAugment's grey fill, 128
        assert np.array_equal(np.asarray(out), step)


def test_grey_pil_and_single_tensors_keep_their_type_and_shape():
    grey = PIL.Image.fromarray(photos()["camera_grey"][:64, :80])
    transform = PolicyAugment("trivialaugment_wide")
    out = transform(grey)
    assert out.mode == "L" and out.size == (80, 64)
    tensor = torch.from_numpy(photos()["astronaut"][:40, :48]).permute(2, 0, 1).contiguous()
    assert transform(tensor).shape == (3, 40, 48) and transform(tensor).dtype == torch.uint8
    image = tv_tensors.Image(tensor)
    assert isinstance(transform(image), tv_tensors.Image)
    with pytest.raises(ValueError, match="uint8 or float"):
        transform(tensor.to(torch.int32))
    with pytest.raises(ValueError, match="mode"):
        transform(grey.convert("RGBA"))


def test_a_batch_gets_a_sub_policy_per_image_and_keeps_its_layout():
    images = photo_batch(12, 32, 40)
    transform = PolicyAugment(AWSDistribution())
    expected, ops = _expected(transform, images, 3)
    assert len({tuple(o[0] for o in row) for row in ops}) > 1  # not one sub-policy for the batch
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)  # a channels-last view
    torch.manual_seed(3)
    out = transform(batch)
    assert out.shape == (12, 3, 32, 40) and out.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
    torch.manual_seed(3)
    contiguous = transform(batch.contiguous())
    assert contiguous.is_contiguous() and torch.equal(contiguous, out)


def test_torch_manual_seed_makes_it_reproducible():
    tensor = torch.from_numpy(photo_batch(4, 24, 24)).permute(0, 3, 1, 2).contiguous()
    transform = PolicyAugment("randaugment")
    torch.manual_seed(1)
    first = transform(tensor)
    torch.manual_seed(1)
    assert torch.equal(first, transform(tensor))
    assert not torch.equal(first, transform(tensor))


def test_inside_compose_with_random_resized_crop_and_to_dtype():
    pipeline = v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(48, antialias=True),
            PolicyAugment("autoaugment"),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    out = pipeline(PIL.Image.fromarray(photos()["coffee"]))
    assert out.shape == (3, 48, 48) and out.dtype == torch.float32 and out.min() >= 0 and out.max() <= 1
    image, label = v2.Compose([v2.ToImage(), PolicyAugment("autoaugment")])(
        PIL.Image.fromarray(photos()["coffee"][:32, :32]), 7
    )
    assert label == 7 and image.shape == (3, 32, 32)


class _Photos(torch.utils.data.Dataset):
    def __init__(self, transform):
        self.images = photo_batch(8, 40, 40)
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.transform(PIL.Image.fromarray(self.images[index])), index


def _collate(items):
    return [np.asarray(image) for image, _ in items], [i for _, i in items]


def test_works_pickled_in_a_two_worker_dataloader():
    transform = PolicyAugment(autoaugment("imagenet"))
    assert pickle.loads(pickle.dumps(transform)).samplers == transform.samplers
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_Photos(transform), batch_size=2, num_workers=2, collate_fn=_collate)
    images = [image for batch, _ in loader for image in batch]
    assert len(images) == 8 and all(image.shape == (40, 40, 3) for image in images)
    torch.manual_seed(0)
    again = [image for batch, _ in loader for image in batch]
    assert all(np.array_equal(a, b) for a, b in zip(images, again))  # workers seeded from torch's generator


def test_a_schedule_follows_set_epoch(tmp_path):
    schedule = PolicySchedule([[Policy([[("Invert", 0)]])] * 2, [Policy([[("Equalize", 0)]])] * 2])
    path = tmp_path / "schedule.json"
    schedule.save(path)
    transform = PolicyAugment(str(path))
    image = np.ascontiguousarray(photos()["astronaut"][:32, :32])
    assert np.array_equal(np.asarray(transform(PIL.Image.fromarray(image))), 255 - image)
    transform.set_epoch(1)
    assert np.array_equal(
        np.asarray(transform(PIL.Image.fromarray(image))), reference.apply_value("Equalize", image, 0.0)
    )
    assert "epoch 1" in repr(transform) and "past its end" not in repr(transform)
    transform.set_epoch(5)  # past the end: the last epoch's
    assert transform.samplers == list(schedule[1]) and schedule[5] == schedule[1]
    assert "schedule of 2 epochs, epoch 5 (past its end: epoch 1's policies)" in repr(transform)
    # any other policy: set_epoch is a no-op, so one training loop serves every policy
    plain = PolicyAugment("autoaugment")
    before = plain.samplers
    plain.set_epoch(3)
    assert plain.samplers is before and plain.epoch == 3
    with pytest.raises(ValueError, match="epoch must be an integer"):
        plain.set_epoch(-1)


def test_a_schedule_past_its_end_and_an_empty_one(tmp_path):
    schedule = PolicySchedule([[Policy([[("Invert", 0)]])], [Policy([[("Equalize", 0)]])]])
    assert schedule[2] == schedule[7] == schedule[1] and schedule[-2] == schedule[0]
    assert list(schedule) == schedule.epochs  # iteration ends (it does not follow the clamp)
    assert schedule[np.int64(5)] == schedule[1]  # a NumPy epoch too
    assert schedule.for_copies(9, 4) == [schedule[1][0]] * 4
    with pytest.raises(ValueError, match="multiple of 2"):
        PolicySchedule([[Policy([[("Invert", 0)]])] * 2]).for_copies(0, 3)
    with pytest.raises(IndexError, match="no epochs"):
        PolicySchedule()[0]
    path = tmp_path / "empty.json"
    path.write_text('{"format": "fastpolicy.schedule", "version": 1, "epochs": []}')
    from fastpolicy.jsonio import PolicyFormatError

    with pytest.raises(PolicyFormatError, match="holds no epochs"):
        PolicySchedule.load(str(path))


@pytest.mark.gpu
def test_a_cuda_batch_equals_the_per_image_reference():
    images = photo_batch(16, 48, 64)
    transform = PolicyAugment("randaugment")
    expected, _ = _expected(transform, images, 5)
    torch.manual_seed(5)
    out = transform(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().cuda())
    assert out.is_cuda and np.array_equal(out.permute(0, 2, 3, 1).cpu().numpy(), expected)


def test_the_pil_stage_covers_the_registry_and_takes_a_fill_per_channel():
    from fastpolicy.backends.pil_stage import PIL_OPS, PilStage

    assert list(PIL_OPS) == list(BUILTIN_OPS) == list(OP_NAMES)  # (registered ops get theirs: test_register_op)
    image = PIL.Image.fromarray(np.full((20, 24, 3), 200, np.uint8))
    shifted = PilStage((1, 2, 3)).apply_ops(image, [Op(OP_NAMES.index("TranslateX"), 0.5, 0.0, 0.0, 0)])
    assert np.asarray(shifted)[0, -1].tolist() == [1, 2, 3] and np.asarray(shifted)[0, 0].tolist() == [200] * 3
    assert np.asarray(image).max() == 200  # not modified


def test_video_frames_get_their_video_s_ops_as_the_reference_does():
    frames = photo_batch(3, 24, 28)
    video = tv_tensors.Video(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())
    transform = PolicyAugment(Policy([[("Rotate", 9), ("Equalize", 0)], [("ShearY", 4), ("Solarize", 5)]]))
    torch.manual_seed(2)
    ops = transform.draw(1)[0]
    torch.manual_seed(2)
    out = transform(video)
    expected = _reference(frames, [[op._replace(partner=i) for op in ops] for i in range(3)], 128)
    assert isinstance(out, tv_tensors.Video) and np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)


class _SameImage(torch.utils.data.Dataset):
    """Four copies of one photo, through ``transform``."""

    def __init__(self, transform):
        self.image, self.transform = torch.from_numpy(photo_batch(1, 32, 40)[0]).permute(2, 0, 1), transform

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index):
        return self.transform(self.image)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_set_epoch_reaches_persistent_dataloader_workers(context):
    schedule = PolicySchedule([[Policy([[("Invert", 0)]])] * 2, [Policy([[("Equalize", 0)]])] * 2])
    transform = PolicyAugment(schedule)
    loader = torch.utils.data.DataLoader(
        _SameImage(transform), batch_size=4, num_workers=2, persistent_workers=True, multiprocessing_context=context
    )
    image = _SameImage(transform).image.permute(1, 2, 0).numpy()
    expected = {
        epoch: torch.from_numpy(reference.apply_value(op, image, 0)).permute(2, 0, 1)
        for epoch, op in ((0, "Invert"), (1, "Equalize"))
    }
    for epoch in (0, 1, 0):
        transform.set_epoch(epoch)
        (batch,) = list(loader)
        assert batch.shape == (4, 3, 32, 40)
        assert all(torch.equal(row, expected[epoch]) for row in batch), f"epoch {epoch}"
    with pytest.raises(ValueError, match="epoch must be an integer"):
        transform.set_epoch(1.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_float_white_stays_white_in_every_float_type(dtype):
    """Half and bfloat16 go through float32: 1.0 · 255 rounded in half is 256, which wrapped to 0."""
    twice = PolicyAugment(Policy([[("Invert", 0), ("Invert", 0)]]))
    for level in (1.0, 0.999, 0.0):
        image = torch.full((2, 3, 6, 6), level, dtype=dtype)
        out = twice(image)
        assert out.dtype == dtype
        expected = torch.full_like(image, round(float(image[0, 0, 0, 0]) * 255) / 255)
        assert torch.equal(out, expected), (level, out.unique())


@pytest.mark.parametrize("value", [-0.5, 1.5, float("nan"), float("inf")])
def test_floats_outside_zero_one_are_refused_not_wrapped(value):
    image = torch.rand(3, 8, 8)
    image[0, 2, 3] = value
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        PolicyAugment(Policy([[("Invert", 0)]]))(image)


def test_an_image_of_zero_size_comes_back_unchanged():
    for shape in [(3, 0, 8), (3, 8, 0), (0, 3, 8, 8)]:
        image = torch.zeros(shape, dtype=torch.uint8)
        out = PolicyAugment(Policy([[("Rotate", 9), ("Invert", 0)]]))(image)
        assert out.shape == image.shape and out.dtype == image.dtype


def test_an_input_that_requires_grad_is_refused_never_silent_zero_gradients():
    image = torch.rand(3, 8, 8, requires_grad=True)
    with pytest.raises(ValueError, match="detach"):
        PolicyAugment(Policy([[("Invert", 0)]]))(image)
    assert PolicyAugment(Policy([[("Invert", 0)]]))(image.detach()).requires_grad is False


def test_a_float_images_fill_is_its_level_rounded_by_its_pixels():
    """fill 0.9 on a float image is level round(229.5) = 230 (not int(229.5) = 229): read from the
    corner pixels a 45° rotation fills."""
    black = torch.zeros(3, 16, 16)
    out = PolicyAugment(Policy([[("Rotate", 9)]]), fill=0.9)(black)
    assert torch.equal(out[:, 0, 0], torch.full((3,), 230 / 255))
    assert PolicyAugment(Policy([[("Rotate", 9)]]), fill=0.9).fill_levels(black) == 230


def _draws(generator, images):
    augment = PolicyAugment("randaugment", generator=generator)
    return [augment(image) for image in images]


def test_equal_generators_give_equal_outputs_whatever_the_global_generator_does():
    images = [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8) for _ in range(12)]
    torch.manual_seed(1)
    first = _draws(torch.Generator().manual_seed(7), images)
    torch.manual_seed(2)  # the global generator moves elsewhere: no effect
    torch.rand(5)
    second = _draws(torch.Generator().manual_seed(7), images)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other = _draws(torch.Generator().manual_seed(8), images)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    with pytest.raises(TypeError, match="torch.Generator"):
        PolicyAugment("randaugment", generator=np.random.default_rng(0))


def test_a_generator_gives_the_same_outputs_in_another_process():
    import subprocess
    import sys

    code = (
        "import torch; from fastpolicy.transforms import PolicyAugment\n"
        "images = torch.arange(4608).remainder(256).to(torch.uint8).reshape(6, 3, 16, 16)\n"
        "augment = PolicyAugment('autoaugment', generator=torch.Generator().manual_seed(11))\n"
        "print(sum(int(augment(image).sum()) * (i + 1) for i, image in enumerate(images)))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in range(2)]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip().isdigit()


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, augment):
        self.augment, self.image = augment, torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.augment(self.image)


def test_dataloader_workers_with_one_generator_draw_different_streams_reproducibly():
    def epochs():
        torch.manual_seed(0)
        dataset = _Repeat(PolicyAugment("trivialaugment_wide", generator=torch.Generator().manual_seed(5)))
        loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=2)
        return [torch.cat(list(loader)) for _ in range(2)]

    (a, a2), (b, b2) = epochs(), epochs()
    assert torch.equal(a, b) and torch.equal(a2, b2)  # the same seeds: the same outputs
    assert not torch.equal(a[0::2], a[1::2])  # worker 0's images against worker 1's: not the same stream
    assert not torch.equal(a, a2)  # nor the same stream in the next epoch
