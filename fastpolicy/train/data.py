"""Train and validation loaders of a run: Fashion-MNIST (the embedded default) or an image folder.

* :func:`build_loaders` — the dataset's own split: training images for training, the
  test split (Fashion-MNIST) or ``val/`` folder (ImageNet layout) for evaluation.
* :func:`build_search_loaders` — a search's held-out split: both parts are carved from
  the *training* images by a seeded permutation (the test split is never used for search),
  and the split is returned so the run can save it (``split.json``).
"""

from __future__ import annotations

import os

import numpy as np

from ..data import cifar, fashion_mnist
from ..data.files import ImageList, scan_folder
from ..data.stats import channel_stats
from ..loader import Augment, FileChecks, Output, Pipeline, PolicyDALILoader, Sharding


def _layout(device: str) -> str:
    """The batches' memory layout: channels-last on a GPU, where the models train channels-last
    (the stage writes it; the step does not convert), contiguous NCHW on the CPU."""
    return "channels_last" if device == "gpu" else "nchw"


def _array_loaders(
    train: tuple,
    val: tuple,
    batch: int,
    M: int,
    device: str,
    seed: int,
    num_threads: int,
    backend: str | None,
    shard: tuple[int, int] = (0, 1),
    augment: dict | None = None,
):
    """Loaders over in-memory uint8 arrays, normalized by the training images' own statistics;
    ``augment``: the train loader's ``fill``/``magnitude_scale``."""
    images, labels = train
    sharding = Sharding(*shard)
    _check_subset_sizes(len(images), len(val[0]), batch, sharding)
    mean, std = channel_stats(images)
    output = Output("float", _layout(device), mean, std)
    train_loader = PolicyDALILoader.from_arrays(
        images,
        labels,
        batch_size=batch,
        M=M,
        device=device,
        output=output,
        sharding=sharding,
        augment=Augment(backend=backend, **(augment or {})),
        pipeline=Pipeline(seed=seed, num_threads=num_threads),
    )
    val_loader = PolicyDALILoader.from_arrays(
        val[0],
        val[1],
        batch_size=min(batch * M, max(1, len(val[0]) // shard[1])),
        M=1,
        device=device,
        output=output,
        sharding=sharding,
        augment=Augment(baseline="none"),
        pipeline=Pipeline(seed=seed, shuffle=False, drop_last=False, num_threads=num_threads),
    )
    return train_loader, val_loader, int(labels.max()) + 1, images.shape[-1]


def _check_subset_sizes(train: int, val: int, batch: int, sharding: Sharding) -> None:
    """ValueError naming the subset setting when a split is too small for the loaders: the
    training images of a process fewer than one batch, or a process without validation images."""
    processes = f" per process ({sharding.num_shards} processes)" if sharding.num_shards > 1 else ""
    if sharding.size(train) < batch:
        raise ValueError(
            f"the training subset holds {train} images, {sharding.size(train)}{processes} — fewer than one batch of "
            f"{batch}{processes}: raise --subset (train_subset) or lower --batch"
        )
    if sharding.size(val) < 1:
        raise ValueError(
            f"the validation subset holds {val} image(s), none for process {sharding.shard_id} of "
            f"{sharding.num_shards}: raise --val-subset (val_subset) or --val (val_count) to at least "
            f"{sharding.num_shards}"
        )


def _file_loaders(
    train,
    val,
    batch: int,
    M: int,
    image_size: int,
    device: str,
    seed: int,
    num_threads: int,
    backend: str | None,
    shard: tuple[int, int] = (0, 1),
    checks: dict | None = None,
    augment: dict | None = None,
):
    """Loaders over image files (folders, file lists or :class:`ImageList` s); val is centre-cropped.
    ``checks``: ``verify``, ``on_bad``, ``max_pixels`` for both (see :func:`~fastpolicy.data.files.check_files`)."""
    layout, sharding, file_checks = _layout(device), Sharding(*shard), FileChecks(**(checks or {}))
    train_loader = PolicyDALILoader(
        train,
        batch_size=batch,
        M=M,
        image_size=image_size,
        device=device,
        augment=Augment(backend=backend, **(augment or {})),
        pipeline=Pipeline(seed=seed, num_threads=num_threads),
        layout=layout,
        sharding=sharding,
        checks=file_checks,
    )
    val_loader = PolicyDALILoader(
        val,
        batch_size=batch,
        M=1,
        image_size=image_size,
        device=device,
        augment=Augment(baseline="center"),
        pipeline=Pipeline(seed=seed, shuffle=False, drop_last=False, num_threads=num_threads),
        layout=layout,
        sharding=sharding,
        checks=file_checks,
    )
    train_files, val_files = train_loader.images_list, val_loader.images_list
    assert train_files is not None and val_files is not None  # loaders over files
    if val_files.classes != train_files.classes:
        names = [d if isinstance(d, str) else "the split's part" for d in (val, train)]
        raise ValueError(f"{names[0]} and {names[1]} hold different class folders")
    return train_loader, val_loader, len(train_files.classes), 3


def array_dataset(data: str | None) -> tuple[str, tuple, tuple] | None:
    """``(name, (train images, labels), (test images, labels))`` of an in-memory dataset:
    Fashion-MNIST for None, CIFAR-10/100 for a folder in their Python format; None for an
    image folder."""
    if data is None:
        return "fashion_mnist", fashion_mnist.load("train"), fashion_mnist.load("test")
    kind = cifar.detect(data)
    if kind is None:
        return None
    train, test = cifar.load(data, "train"), cifar.load(data, "test")
    return kind, train[:2], test[:2]


def _folders(data: str) -> tuple[str, str]:
    train_dir, val_dir = os.path.join(data, "train"), os.path.join(data, "val")
    for path in (train_dir, val_dir):
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"{data} needs ImageNet-layout train/ and val/ folders (or CIFAR's Python batches); {path} is missing"
            )
    return train_dir, val_dir


def balanced_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """int64[count], sorted: ``count`` indices with every class equally represented (the
    first ``count mod classes`` classes get one more), drawn by a permutation seeded by ``seed``."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if not 0 < count <= len(labels):
        raise ValueError(f"a subset must hold 1 to {len(labels)} images, got {count}")
    rng = np.random.default_rng([seed, 17])
    chosen = []
    for i, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        want = count // len(classes) + (i < count % len(classes))
        if want > len(members):
            raise ValueError(
                f"class {label} has {len(members)} images, fewer than the {want} a balanced subset of {count} needs"
            )
        chosen.append(rng.permutation(members)[:want])
    return np.sort(np.concatenate(chosen))


def build_loaders(
    data: str | None,
    batch: int,
    M: int,
    image_size: int,
    device: str,
    seed: int,
    train_subset: int | None = None,
    val_subset: int | None = None,
    num_threads: int = 2,
    backend: str | None = None,
    shard: tuple[int, int] = (0, 1),
    checks: dict | None = None,
    augment: dict | None = None,
    subset_seed: int | None = None,
):
    """``(train, val, num_classes, channels)``.

    Args:
        data: None for Fashion-MNIST (``/usr/share/datasets/fashion-mnist``: train split for
            training, test split for validation), a CIFAR-10/100 folder in its Python format
            (train and test batches; :mod:`fastpolicy.data.cifar`), or a folder with
            ImageNet-layout ``train/`` and ``val/`` subfolders.
        batch: N per step; the train loader yields M·N rows, the val loader N (M = 1,
            no policy; Fashion-MNIST unaugmented, folders centre-cropped).
        train_subset, val_subset: use only the first this many images (None: all).
        subset_seed: with ``train_subset``, train on a class-balanced subset drawn with this
            seed (:func:`balanced_subset`) instead of the first images (Fashion-MNIST).
        shard: ``(shard_id, num_shards)``: this process's part of both splits (``batch`` is per
            process); under ``torchrun`` ``(rank, world_size)``.
        checks: file checks for folders: ``{"verify", "on_bad", "max_pixels"}`` (any of them;
            defaults of :class:`~fastpolicy.loader.PolicyDALILoader`).
        augment: the train loader's policy options ``{"fill", "magnitude_scale"}`` (any of them).
    """
    arrays = array_dataset(data)
    if arrays is not None:
        _, (images, labels), (val_images, val_labels) = arrays
        if train_subset is not None and subset_seed is not None:
            chosen = balanced_subset(labels, train_subset, subset_seed)
            images, labels, train_subset = images[chosen], labels[chosen], None
        return _array_loaders(
            (images[:train_subset], labels[:train_subset]),
            (val_images[:val_subset], val_labels[:val_subset]),
            batch,
            M,
            device,
            seed,
            num_threads,
            backend,
            shard,
            augment,
        )
    if train_subset is not None or val_subset is not None:
        raise ValueError("train_subset/val_subset apply to Fashion-MNIST and CIFAR; pass a smaller folder instead")
    assert data is not None  # the in-memory datasets returned above
    train_dir, val_dir = _folders(data)
    return _file_loaders(
        train_dir, val_dir, batch, M, image_size, device, seed, num_threads, backend, shard, checks, augment
    )


def split_indices(n: int, val_count: int, seed: int, train_count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)``: int64 indices into ``n`` training images, disjoint, from a permutation
    seeded by ``seed``; ``val_count`` held out, then ``train_count`` (None: the rest) for training."""
    if not 0 < val_count < n:
        raise ValueError(f"the validation split must hold 1 to {n - 1} of the {n} training images, got {val_count}")
    order = np.random.default_rng([seed, 11]).permutation(n)
    rest = order[val_count:]
    if train_count is not None:
        if train_count < 1:
            raise ValueError(f"train_subset must be positive, got {train_count}")
        rest = rest[:train_count]
    return np.sort(rest), np.sort(order[:val_count])


def build_search_loaders(
    data: str | None,
    batch: int,
    M: int,
    image_size: int,
    device: str,
    seed: int,
    val_count: int,
    train_subset: int | None = None,
    num_threads: int = 2,
    backend: str | None = None,
    shard: tuple[int, int] = (0, 1),
    loader_seed: int | None = None,
    checks: dict | None = None,
    augment: dict | None = None,
):
    """``(train, val, num_classes, channels, split)`` with both parts drawn from the training images.

    Args:
        data: None (Fashion-MNIST's train split), a CIFAR folder (its train batches) or a
            folder whose ``train/`` is split.
        val_count: images held out for validation (the search's reward).
        train_subset: train on at most this many of the remaining images (None: all).
        seed: seeds the split (and the loaders unless ``loader_seed`` is given).
        Others as :func:`build_loaders`.

    ``split`` (JSON-ready): ``{"dataset", "seed", "train", "val"}`` — indices into the
    Fashion-MNIST train split, or file paths relative to ``<data>/train``.
    """
    loader_seed = seed if loader_seed is None else loader_seed
    arrays = array_dataset(data)
    if arrays is not None:
        name, (images, labels), _ = arrays
        train, val = split_indices(len(images), val_count, seed, train_subset)
        loaders = _array_loaders(
            (images[train], labels[train]),
            (images[val], labels[val]),
            batch,
            M,
            device,
            loader_seed,
            num_threads,
            backend,
            shard,
            augment,
        )
        return (*loaders, {"dataset": f"{name}/train", "seed": seed, "train": train.tolist(), "val": val.tolist()})
    assert data is not None  # the in-memory datasets returned above
    train_dir, _ = _folders(data)
    files = scan_folder(train_dir, on_bad=(checks or {}).get("on_bad", "raise"))
    train, val = split_indices(len(files), val_count, seed, train_subset)

    def part(indices) -> ImageList:
        return ImageList([files.files[i] for i in indices], files.labels[indices], files.classes)

    loaders = _file_loaders(
        part(train), part(val), batch, M, image_size, device, loader_seed, num_threads, backend, shard, checks, augment
    )
    relative = [os.path.relpath(path, train_dir) for path in files.files]
    return (
        *loaders,
        {
            "dataset": os.path.abspath(train_dir),
            "seed": seed,
            "train": [relative[i] for i in train],
            "val": [relative[i] for i in val],
        },
    )


__all__ = ["balanced_subset", "build_loaders", "build_search_loaders", "split_indices"]
