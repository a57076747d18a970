"""torchvision's own checks of its AutoAugment family, with PolicyAugment swapped in.

A harness written against torchvision's documented behaviour of ``v2.AutoAugment``,
``v2.RandAugment`` and ``v2.TrivialAugmentWide`` (the ideas of its ``check_transform``, the
smoke tests of the family and the classification-preset test): every check runs on
torchvision's class (the control) and on PolicyAugment. ``torch.jit.script`` is left out
(deprecated in this torch).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils._pytree import tree_flatten
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import AutoAugmentPolicy

from fastpolicy import Policy, reference
from fastpolicy.sampling import sample_policies
from fastpolicy.transforms import PolicyAugment

SIZE = (17, 11)  # torchvision's default test size
POLICIES = ("AutoAugment", "RandAugment", "TrivialAugmentWide")
IMPLEMENTATIONS = ("torchvision", "fastpolicy")
NAMES = {"AutoAugment": "autoaugment", "RandAugment": "randaugment", "TrivialAugmentWide": "trivialaugment_wide"}


def make(name: str, implementation: str, **kwargs):
    """The transform ``name`` with torchvision's keyword arguments, by ``implementation``."""
    if implementation == "torchvision":
        return getattr(v2, name)(**kwargs)
    if name == "AutoAugment":
        return PolicyAugment(kwargs.pop("policy", AutoAugmentPolicy.IMAGENET), **kwargs)
    return PolicyAugment(NAMES[name], **kwargs)


def make_image_tensor(size=SIZE, *, dtype=torch.uint8, batch_dims=(), channels=3):
    """A pure tensor [..., C, H, W]: uint8 levels, or float in [0, 1]."""
    generator = torch.Generator().manual_seed(hash((size, batch_dims, channels)) % 2**31)
    pixels = torch.randint(0, 256, (*batch_dims, channels, *size), dtype=torch.uint8, generator=generator)
    return pixels if dtype == torch.uint8 else pixels.to(dtype) / 255


def make_image(size=SIZE, **kwargs):
    return tv_tensors.Image(make_image_tensor(size, **kwargs))


def make_image_pil(size=SIZE, *, dtype=torch.uint8, batch_dims=(), channels=3):
    image = make_image_tensor(size, channels=channels)
    return PIL.Image.fromarray(
        image.permute(1, 2, 0).numpy()[..., 0] if channels == 1 else image.permute(1, 2, 0).numpy()
    )


def make_video(size=SIZE, *, dtype=torch.uint8, batch_dims=(), frames=3, channels=3):
    return tv_tensors.Video(make_image_tensor(size, dtype=dtype, batch_dims=(*batch_dims, frames), channels=channels))


MAKERS = [make_image_tensor, make_image_pil, make_image, make_video]
CASES = [
    pytest.param(maker, dtype, id=f"{maker.__name__}-{str(dtype).removeprefix('torch.')}")
    for maker in MAKERS
    for dtype in (torch.uint8, torch.float32)
    if not (maker is make_image_pil and dtype is torch.float32)
]


def _copy(item):
    return item.copy() if isinstance(item, PIL.Image.Image) else item.clone()


def _equal(a, b) -> bool:
    if isinstance(a, PIL.Image.Image):
        return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    return type(a) is type(b) and a.dtype == b.dtype and torch.equal(a, b)


def check_transform(transform, inpt):
    """torchvision's check_transform: pickles; keeps the type, dtype and shape; leaves the input
    untouched; and the sample smoke test (dict, list and tuple samples: the structure kept,
    the image transformed as its own type, every other entry passed through as is)."""
    pickle.loads(pickle.dumps(transform))
    before = _copy(inpt)
    output = transform(inpt)
    assert isinstance(output, type(inpt))
    assert _equal(inpt, before), "the input was modified"
    if isinstance(inpt, PIL.Image.Image):
        assert output.mode == inpt.mode and output.size == inpt.size
    else:
        assert output.dtype == inpt.dtype and output.shape == inpt.shape and output.device == inpt.device
    sample = dict(
        image_or_video=inpt,
        int=0,
        float=0.0,
        bool=True,
        none=None,
        str="str",
        path=Path.cwd(),
        object=object(),
        tensor=torch.empty(5),
        array=np.empty(5),
    )
    for container in (dict, list, tuple):
        sample_in = sample if container is dict else container(sample.values())
        flat_in, spec_in = tree_flatten(sample_in)
        torch.manual_seed(0)
        flat_out, spec_out = tree_flatten(transform(sample_in))
        assert spec_out == spec_in
        assert type(flat_out[0]) is type(flat_in[0])
        assert all(out is item for out, item in zip(flat_out[1:], flat_in[1:], strict=True))
    return output


@pytest.mark.parametrize(("maker", "dtype"), CASES)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_transform_smoke(policy, implementation, maker, dtype):
    torch.manual_seed(0)
    check_transform(make(policy, implementation), maker(dtype=dtype))


@pytest.mark.parametrize("aa_policy", list(AutoAugmentPolicy), ids=lambda p: p.value)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_autoaugment_policy_argument(implementation, aa_policy):
    for seed in range(3):
        torch.manual_seed(seed)
        check_transform(make("AutoAugment", implementation, policy=aa_policy), make_image())


@pytest.mark.parametrize("num_ops", [0, 1, 2, 5])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_randaugment_num_ops(implementation, num_ops):
    transform = make("RandAugment", implementation, num_ops=num_ops, magnitude=30)
    inpt = make_image()
    torch.manual_seed(0)
    out = check_transform(transform, inpt)
    if num_ops == 0:
        assert torch.equal(out, inpt)


@pytest.mark.parametrize("bins", [2, 31])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", ["RandAugment", "TrivialAugmentWide"])
def test_num_magnitude_bins(policy, implementation, bins):
    kwargs = {"num_magnitude_bins": bins} | ({"magnitude": bins - 1} if policy == "RandAugment" else {})
    torch.manual_seed(0)
    check_transform(make(policy, implementation, **kwargs), make_image())


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_bad_num_ops_and_magnitude_are_refused(implementation):
    with pytest.raises(ValueError, match="num_ops"):
        make("RandAugment", implementation, num_ops=-1)
    if implementation == "fastpolicy":  # torchvision checks the bin only when it indexes it
        with pytest.raises(ValueError, match="magnitude"):
            make("RandAugment", implementation, magnitude=31)


FILLS = [None, 1, 0.5, [1], [0.2], (0,), (0.7,), [1, 0, 1], [0.1, 0.2, 0.3], (0, 1, 0), (0.9, 0.234, 0.314)]


def _adapt(fill, dtype):
    """A fill in [0, 1] units to the dtype's range (torchvision's ``adapt_fill``)."""
    if fill is None or dtype.is_floating_point:
        return fill
    if isinstance(fill, (int, float)):
        return int(fill * 255)
    return type(fill)(int(v * 255) for v in fill)


@pytest.mark.parametrize("fill", FILLS, ids=str)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_fill_values(policy, implementation, dtype, fill):
    transform = make(policy, implementation, fill=_adapt(fill, dtype))
    for seed in range(3):
        torch.manual_seed(seed)
        check_transform(transform, make_image(dtype=dtype))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_fill_per_type_dict(implementation):
    transform = make("AutoAugment", implementation, fill={tv_tensors.Image: 7, "others": 0})
    torch.manual_seed(0)
    check_transform(transform, make_image())
    check_transform(transform, make_video())


@pytest.mark.parametrize("interpolation", ["nearest", v2.InterpolationMode.BILINEAR, PIL.Image.Resampling.NEAREST])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_interpolation_argument(policy, implementation, interpolation):
    torch.manual_seed(0)
    check_transform(make(policy, implementation, interpolation=interpolation), make_image())
    check_transform(make(policy, implementation, interpolation=interpolation), make_image_pil())


@pytest.mark.parametrize("batch_dims", [(2,), (2, 3), (0,)], ids=str)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_leading_batch_dims(policy, implementation, batch_dims):
    torch.manual_seed(0)
    inpt = make_image_tensor(batch_dims=batch_dims)
    out = check_transform(make(policy, implementation), inpt)
    assert out.shape == inpt.shape


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_videos_are_augmented_one_sub_policy_across_frames(policy, implementation):
    """A video of identical frames stays a video of identical frames (one sub-policy for all
    of them), and is changed for some draws (not passed through)."""
    frame = make_image_tensor((24, 20))
    video = tv_tensors.Video(frame.expand(4, *frame.shape).clone())
    transform = make(policy, implementation)
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        out = transform(video)
        assert isinstance(out, tv_tensors.Video) and out.shape == video.shape
        assert all(torch.equal(out[0], out[t]) for t in range(1, 4))
        changed += not torch.equal(out, video)
    assert changed > 0


CLASSIF_IMAGES = ("pil", "tensor", "tv_image")


@pytest.mark.parametrize("image_type", CLASSIF_IMAGES)
@pytest.mark.parametrize("label_type", ["int", "tensor"])
@pytest.mark.parametrize("sample_type", ["tuple", "dict"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", POLICIES)
def test_classification_preset(policy, implementation, image_type, label_type, sample_type):
    """torchvision's classification preset: crop, flip, the policy, to a float image, normalize,
    erase; the image of a batch of one [1, 3, 250, 250] or a PIL image, with its label."""
    image = tv_tensors.Image(torch.randint(0, 256, (1, 3, 250, 250), dtype=torch.uint8))
    if image_type == "pil":
        image = v2.functional.to_pil_image(image[0])
    elif image_type == "tensor":
        image = image.as_subclass(torch.Tensor)
    label = 1 if label_type == "int" else torch.tensor([1])
    sample = (image, label) if sample_type == "tuple" else {"image": image, "label": label}
    pipeline = v2.Compose(
        [
            v2.RandomResizedCrop((224, 224), antialias=True),
            v2.RandomHorizontalFlip(p=1),
            make(policy, implementation),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0, 0, 0], std=[1, 1, 1]),
            v2.RandomErasing(p=1),
        ]
    )
    torch.manual_seed(0)
    out = pipeline(sample)
    out_image, out_label = out if sample_type == "tuple" else (out["image"], out["label"])
    assert out_image.shape[-2:] == (224, 224) and out_image.dtype == torch.float32
    assert out_label == label


# --- PolicyAugment's own promises beside torchvision's ---


@pytest.mark.parametrize("policy", POLICIES)
def test_standard_policies_fill_like_torchvision_and_learned_ones_with_grey(policy):
    """The fill default: 0 (torchvision's) for the standard policies, 128 (AutoAugment's grey,
    what the searches use) for learned ones; a given fill wins."""
    assert make(policy, "fastpolicy").default_fill == 0
    white = torch.full((3, 32, 32), 255, dtype=torch.uint8)
    rotate = {"standard": Policy([[("Rotate", 9)]], space="autoaugment"), "learned": Policy([[("Rotate", 9)]])}
    for kind, want in (("standard", 0), ("learned", 128)):
        torch.manual_seed(0)
        out = PolicyAugment(rotate[kind])(white)
        assert out[:, 0, 0].tolist() == [want] * 3, kind
    torch.manual_seed(0)
    assert PolicyAugment(rotate["learned"], fill=[1, 2, 3])(white)[:, 0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("policy", POLICIES)
def test_float_images_are_the_uint8_result_over_255(policy):
    levels = make_image_tensor((24, 20), batch_dims=(6,))
    transform = make(policy, "fastpolicy")
    torch.manual_seed(3)
    as_uint8 = transform(levels)
    torch.manual_seed(3)
    as_float = transform(levels.to(torch.float64) / 255)
    assert as_float.dtype == torch.float64
    assert torch.equal(as_float, as_uint8.to(torch.float64) / 255)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_batch_is_drawn_by_the_loaders_sampler(policy):
    """A call draws one seed from torch's generator and its images' parameters from the one
    sampler the loader uses (``sample_policies``), applied as the reference does; a PIL image
    and its tensor get the same ops after the same seed."""
    images = make_image_tensor((24, 20), batch_dims=(8,))
    transform = make(policy, "fastpolicy")
    torch.manual_seed(5)
    batched = transform(images)
    torch.manual_seed(5)
    params = sample_policies(transform.samplers, 8, transform._rng())  # the NumPy generator a call draws from
    expected = reference.apply_batch(images.permute(0, 2, 3, 1).numpy(), params, fill=transform.default_fill)
    assert np.array_equal(batched.permute(0, 2, 3, 1).numpy(), expected)
    for image in images:
        torch.manual_seed(7)
        tensor = transform(image)
        torch.manual_seed(7)
        pil = transform(PIL.Image.fromarray(image.permute(1, 2, 0).numpy()))
        assert np.array_equal(np.asarray(pil), tensor.permute(1, 2, 0).numpy())


def test_constructor_arguments_for_other_policies_are_refused():
    with pytest.raises(ValueError, match="num_ops"):
        PolicyAugment("autoaugment", num_ops=3)
    with pytest.raises(ValueError, match="magnitude"):
        PolicyAugment("trivialaugment_wide", magnitude=3)
    with pytest.raises(ValueError, match="interpolation"):
        PolicyAugment("autoaugment", interpolation="nearest-exact")
