"""The ``transform`` scenario: ``PolicyAugment`` as torchvision's drop-in, in a ``DataLoader``.

What a torchvision user runs: an image-folder ``Dataset`` (``torchvision.datasets.ImageFolder``)
read in ``workers`` DataLoader processes, each image through ``RandomResizedCrop(224)`` +
horizontal flip + the policy + ``ToImage`` / ``ToDtype(float32)`` / ``Normalize``, batches
of N float [N, 3, 224, 224] images. The policy is torchvision's own (``AutoAugment(IMAGENET)``,
``RandAugment(2, 9)``, ``TrivialAugmentWide()``) or :class:`~fastpolicy.transforms.PolicyAugment`
of the same standard policy — the one-line swap of the README — on PIL images (ImageFolder's
default loader) and on uint8 tensors (``torchvision.io.decode_image``). Both contenders of a
case run interleaved (:func:`~.timing.interleaved_rates`); the ratio is torchvision's
images/s over PolicyAugment's.
"""

from __future__ import annotations

import functools

import torch

from ..loader.settings import IMAGENET_MEAN, IMAGENET_STD
from .peers import NAMES, SIZE, torchvision_policy, worker_context
from .timing import Paced, interleaved_rates

INPUTS = ("PIL", "tensor")
"""The image types the Dataset hands the transforms: PIL images or uint8 CHW tensors."""


def decode_tensor(path: str) -> torch.Tensor:
    """uint8 [3, H, W]: the RGB image at ``path`` (ImageFolder's loader for tensor inputs)."""
    import torchvision

    return torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)


def policy_transform(policy: str, contender: str):
    """The policy step of ``contender`` (``"torchvision"`` or ``"fastpolicy"``) for standard
    policy ``policy``, with torchvision's arguments on both sides."""
    if contender == "torchvision":
        return torchvision_policy(policy)
    if contender == "fastpolicy":
        from ..transforms import PolicyAugment

        if policy == "randaugment":
            return PolicyAugment(policy, num_ops=2, magnitude=9)
        return PolicyAugment(policy)
    raise ValueError(f"contender must be 'torchvision' or 'fastpolicy', got {contender!r}")


def folder_loader(root: str, N: int, inputs: str, policy: str, contender: str, workers: int, batches: int):
    """A generator of float [N, 3, 224, 224] batches: ``ImageFolder(root)`` with ``inputs``
    images through the drop-in pipeline with ``contender``'s ``policy``
    (:func:`policy_transform`) in ``workers`` processes (not persistent), for ``batches``
    batches; closing it ends its workers."""
    import torchvision
    from torchvision.transforms import v2

    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    steps = [v2.RandomResizedCrop(SIZE, antialias=True), v2.RandomHorizontalFlip(), policy_transform(policy, contender)]
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    loader_kw = {} if inputs == "PIL" else {"loader": decode_tensor}
    dataset = torchvision.datasets.ImageFolder(root, transform=v2.Compose(steps), **loader_kw)
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=batches * N)  # epochs back to back
    data = torch.utils.data.DataLoader(
        dataset,
        batch_size=N,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        multiprocessing_context=worker_context(workers),
    )
    iterator = iter(data)
    try:
        for images, _ in iterator:
            yield images
    finally:
        del iterator  # its workers shut down now, not while another contender is timed


def run_transform(root: str, N: int, policies, workers: int, warmup: int, batches: int, repeats: int) -> list[dict]:
    """Rows ``{"scenario": "transform", "case": "<policy>, <input> input", "M": 1, "contender",
    "images_per_s"}``, PolicyAugment's row first in each case (the ratios' reference)."""
    # DataLoader workers hold up to 2 batches each and deliver in bursts: drain, then time
    # at least three batches per worker (as the loader scenarios do).
    warmup, batches = warmup + 2 * workers + 1, max(batches, 3 * workers)
    rows = []
    for policy in policies:
        for inputs in INPUTS:
            case = f"{NAMES[policy]}, {inputs} input"
            contenders = {
                f"{name} {label}, {workers} DataLoader workers": Paced(
                    functools.partial(folder_loader, root, N, inputs, policy, name, workers, warmup + batches),
                    warmup,
                    batches,
                )
                for name, label in (("fastpolicy", "PolicyAugment"), ("torchvision", "v2"))
            }
            rates = interleaved_rates(contenders, N, repeats)
            for contender, rate in rates.items():
                rows.append(
                    {
                        "scenario": "transform",
                        "case": case,
                        "M": 1,
                        "device": "cpu",
                        "contender": contender,
                        "images_per_s": rate,
                    }
                )
                print(f"  transform {case:34s} {contender:50s} {rate:10.1f} img/s", flush=True)
    return rows


def batch_calls(batch: torch.Tensor, policy: str, contender: str, calls: int):
    """A generator of ``calls`` augmented copies of ``batch`` (uint8 [N, 3, H, W] on any
    device): fastpolicy's PolicyAugment in one call on the batch (a sub-policy per image), or
    torchvision's policy image by image (its per-sample equivalent; on a batch it would draw one
    sub-policy for all), both with torchvision's arguments (:func:`policy_transform`)."""
    transform = policy_transform(policy, contender)
    for _ in range(calls):
        if contender == "fastpolicy":
            yield transform(batch)
        else:
            yield torch.stack([transform(image) for image in batch])


def run_transform_batches(device: str, N: int, policies, warmup: int, batches: int, repeats: int) -> list[dict]:
    """Rows ``{"scenario": "transform", "case": "<policy>, <device> batch", "M": 1, "contender",
    "images_per_s"}``: the drop-in on a pre-decoded uint8 [N, 3, 224, 224] batch of real photos
    on ``device`` (``"cuda"``: the GPU suite's case; the DataLoader case needs no GPU), each
    timing closed by a device synchronize; PolicyAugment's row first in each case."""
    from ..data.photo_tree import photo_batch

    batch = torch.from_numpy(photo_batch(N, SIZE, SIZE)).permute(0, 3, 1, 2).contiguous().to(device)
    sync = torch.cuda.synchronize if batch.is_cuda else None
    rows = []
    for policy in policies:
        case = f"{NAMES[policy]}, {device} batch"
        contenders = {
            label: Paced(functools.partial(batch_calls, batch, policy, name, warmup + batches), warmup, batches)
            for name, label in (
                ("fastpolicy", "fastpolicy PolicyAugment, one call per batch"),
                ("torchvision", "torchvision v2, image by image"),
            )
        }
        for contender, rate in interleaved_rates(contenders, N, repeats, sync=sync).items():
            rows.append(
                {
                    "scenario": "transform",
                    "case": case,
                    "M": 1,
                    "device": device,
                    "contender": contender,
                    "images_per_s": rate,
                }
            )
            print(f"  transform {case:34s} {contender:50s} {rate:10.1f} img/s", flush=True)
    return rows


__all__ = [
    "INPUTS",
    "batch_calls",
    "decode_tensor",
    "folder_loader",
    "policy_transform",
    "run_transform",
    "run_transform_batches",
]
