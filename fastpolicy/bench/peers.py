"""The contenders of the loader benchmarks, each an endless iterator of float NCHW batches.

Every contender reads the same ImageNet-layout JPEG tree, decodes each image once, makes
``M`` copies, gives each copy random-resized-crop 224 + horizontal flip and (with
``policy``) an augmentation policy, normalizes, and yields ``M·N`` float images per batch
on the benchmark's device:

* ``fastpolicy`` — :class:`~fastpolicy.loader.PolicyDALILoader` (DALI decode; the policy
  on the CuPy kernels on a GPU, the native stage on the CPU; ``backend`` picks). Its policy
  is a standard policy of :mod:`fastpolicy.policies` — the same one the peers apply:
  AutoAugment's ImageNet table, RandAugment (2 ops, bin 9 of 31) or TrivialAugmentWide —
  or M random Adversarial-AutoAugment policies (two ops on every copy: more work);
* ``dali`` — a plain DALI pipeline (reader, decoder, ``random_resized_crop``,
  ``crop_mirror_normalize``), with ``policy`` DALI's ``auto_aug`` equivalent per copy
  (``auto_augment_image_net``, ``rand_augment(n=2, m=9)``, ``trivial_augment_wide``);
* ``torchvision`` — ``ImageFolder``-style decoding with ``torchvision.io`` and v2
  transforms (``AutoAugment(IMAGENET)``, ``RandAugment()``, ``TrivialAugmentWide()``) in
  ``DataLoader`` workers;
* ``kornia`` — torchvision's decode + crop + flip in workers, then Kornia's
  ``AutoAugment("imagenet")`` on the device batch (it draws one sub-policy per call, i.e.
  per batch). Only if Kornia is installed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..loader.settings import IMAGENET_MEAN, IMAGENET_STD, Pipeline
from ..policies import STANDARD
from ..policy import Policy
from .timing import endless

SIZE = 224

POLICIES = tuple(name for name, make in STANDARD.items() if not getattr(make, "mixes", False))
"""Standard policies every contender applies (``fastpolicy bench --policies``); AugMix's chains
and mix are not yet benchmarked."""

NAMES = {
    "autoaugment": "AutoAugment ImageNet",
    "randaugment": "RandAugment (2, 9)",
    "trivialaugment_wide": "TrivialAugmentWide",
}
"""How the tables name each standard policy."""


def fastpolicy_loader(
    root: str,
    N: int,
    M: int,
    policy: str | None,
    device: str,
    threads: int,
    backend: str | None = None,
    seed: int = 0,
    priority: str | None = Pipeline.dali_priority,
):
    """``policy``: None, a standard policy of :data:`POLICIES` (on every copy) or ``"random"``
    (M random Adversarial-AutoAugment policies)."""
    from ..loader import Augment, PolicyDALILoader

    rng = np.random.default_rng(seed)
    policies = (
        None
        if policy is None
        else ([Policy.random(rng) for _ in range(M)] if policy == "random" else STANDARD[policy]())
    )
    loader = PolicyDALILoader(
        root,
        batch_size=N,
        M=M,
        image_size=SIZE,
        device=device,
        policies=policies,
        augment=Augment(backend=backend),
        pipeline=Pipeline(seed=seed, num_threads=threads, dali_priority=priority),
    )
    return _images(loader)


def _images(loader):
    """The loader's images, epoch after epoch; closing the generator stops its prefetch thread."""
    try:
        for batch in endless(loader):
            yield batch.images
    finally:
        loader.close()


def _dali_policy(images, policy: str):
    from nvidia.dali.auto_aug import auto_augment, rand_augment, trivial_augment

    if policy == "autoaugment":
        return auto_augment.auto_augment_image_net(images, shape=(SIZE, SIZE))
    if policy == "randaugment":
        return rand_augment.rand_augment(images, n=2, m=9, shape=(SIZE, SIZE))
    if policy == "trivialaugment_wide":
        return trivial_augment.trivial_augment_wide(images, shape=(SIZE, SIZE))
    raise ValueError(f"unknown standard policy {policy!r}")


def _dali_graph(root: str, M: int, policy: str | None, device: str):
    from nvidia.dali import fn, types

    jpegs, labels = fn.readers.file(file_root=root, random_shuffle=True, name="reader")
    images = fn.decoders.image(jpegs, device="mixed" if device == "gpu" else "cpu", output_type=types.RGB)
    outputs = []
    for _ in range(M):
        crop = fn.random_resized_crop(images, size=(SIZE, SIZE))
        if policy:
            crop = _dali_policy(crop, policy)
        outputs.append(
            fn.crop_mirror_normalize(
                crop,
                mirror=fn.random.coin_flip(),
                dtype=types.FLOAT,
                output_layout="CHW",
                mean=[255 * m for m in IMAGENET_MEAN],
                std=[255 * s for s in IMAGENET_STD],
            )
        )
    return (*outputs, labels)


def dali_pipeline(root: str, N: int, M: int, policy: str | None, device: str, threads: int, seed: int = 0):
    """DALI's own pipeline; with ``policy`` (a standard policy name) its ``auto_aug`` version
    on every copy."""
    from nvidia.dali import pipeline_def
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    pipe = pipeline_def(_dali_graph, enable_conditionals=policy is not None)(
        root, M, policy, device, batch_size=N, num_threads=threads, device_id=0 if device == "gpu" else None, seed=seed
    )
    pipe.build()
    names = [f"copy{m}" for m in range(M)] + ["label"]
    iterator = DALIGenericIterator(
        pipe, names, reader_name="reader", auto_reset=True, last_batch_policy=LastBatchPolicy.DROP
    )
    return (torch.cat([out[0][f"copy{m}"] for m in range(M)]) for out in endless(iterator))


class _Copies(torch.utils.data.Dataset):
    """torchvision: decode once, ``M`` independently transformed copies per image."""

    def __init__(self, root: str, M: int, transform):
        import torchvision

        self.samples = torchvision.datasets.ImageFolder(root).samples
        self.M, self.transform = M, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        import torchvision

        path, label = self.samples[index]
        image = torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)
        return torch.stack([self.transform(image) for _ in range(self.M)]), label


def _copies_loader(root: str, N: int, M: int, transform, device: str, workers: int):
    """A shuffling ``DataLoader`` of :class:`_Copies` in ``workers`` processes (pinned memory on a GPU)."""
    return torch.utils.data.DataLoader(
        _Copies(root, M, transform),
        batch_size=N,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
        pin_memory=device == "gpu",
        multiprocessing_context=worker_context(workers),
    )


def worker_context(workers: int):
    """``DataLoader`` workers start as new interpreters, not by forking this process: the bench
    runs DALI pipelines (and their thread pools) beside the peers' workers, and a process forked
    while another thread holds a lock can wait on it forever (seen: a worker hung at its start)."""
    return "spawn" if workers > 0 else None


def _to_device(loader, device: str):
    for images, _ in endless(loader):
        images = images.transpose(0, 1).reshape(-1, *images.shape[2:])  # copy-major: row m·N + n
        yield images.cuda(non_blocking=True) if device == "gpu" else images


def torchvision_policy(policy: str):
    """torchvision v2's transform of a standard policy name."""
    from torchvision.transforms import v2

    return {
        "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
        "randaugment": lambda: v2.RandAugment(num_ops=2, magnitude=9),
        "trivialaugment_wide": v2.TrivialAugmentWide,
    }[policy]()


def torchvision_loader(root: str, N: int, M: int, policy: str | None, device: str, workers: int):
    """torchvision v2 in ``workers`` DataLoader processes (pinned memory on a GPU); ``policy``
    a standard policy name or None."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(SIZE, antialias=True), v2.RandomHorizontalFlip()]
    if policy:
        steps.append(torchvision_policy(policy))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return _to_device(_copies_loader(root, N, M, v2.Compose(steps), device, workers), device)


def kornia_available() -> bool:
    try:
        import kornia.augmentation.auto  # noqa: F401
    except ImportError:
        return False
    return True


def kornia_loader(root: str, N: int, M: int, device: str, workers: int):
    """torchvision decode + crop + flip in workers; Kornia's ImageNet AutoAugment on the device batch."""
    from kornia.augmentation.auto import AutoAugment
    from torchvision.transforms import v2

    crop = v2.Compose(
        [v2.RandomResizedCrop(SIZE, antialias=True), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)]
    )
    data = _copies_loader(root, N, M, crop, device, workers)
    target = torch.device("cuda" if device == "gpu" else "cpu")
    augment = AutoAugment("imagenet").to(target)
    mean = torch.tensor(IMAGENET_MEAN, device=target).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=target).view(1, 3, 1, 1)
    for images in _to_device(data, device):
        yield (augment(images) - mean) / std


__all__ = [
    "NAMES",
    "POLICIES",
    "SIZE",
    "dali_pipeline",
    "fastpolicy_loader",
    "kornia_available",
    "kornia_loader",
    "torchvision_loader",
    "torchvision_policy",
]
