"""Train and validation loaders of a run: Fashion-MNIST (the embedded default), CIFAR, an
image folder or webdataset / TFRecord shards.

* :func:`build_loaders` — the dataset's own split: training images for training, the
  test split (Fashion-MNIST, CIFAR), the ``val/`` folder (ImageNet layout: image folders or
  folders of shards) or the ``val_data`` given (``--val-data``) for evaluation.
* :func:`build_search_loaders` — a search's held-out split: both parts are carved from
  the *training* images (or samples of the training shards) by a seeded permutation (the
  test split is never used for search), and the split is returned so the run can save it
  (``split.json``).

What ``data`` may be (besides None and CIFAR): a folder with ``train/`` and ``val/``, each an
ImageNet-layout image folder or a folder of ``.tar`` / ``.tfrecord`` shards; or shards
themselves, as :class:`~fastpolicy.loader.PolicyDALILoader` takes them (a brace pattern
``train-{000000..001023}.tar``, a glob, a folder of shards, a list), whose held-out shards
come in ``val_data``. The class count of shards is the loader's dataset's
(:meth:`~fastpolicy.loader.shards.ShardDataset.class_count`).
"""

from __future__ import annotations

import os

import numpy as np

from ..data import cifar, fashion_mnist
from ..data.files import ImageList, scan_folder
from ..data.manifest import check_same_classes
from ..data.shards import ShardKeys, list_shards
from ..data.stats import channel_stats
from ..loader import Augment, FileChecks, Output, Pipeline, PolicyDALILoader, ShardDataset, Sharding
from ..loader.dataset import FileDataset
from ..log import get as get_logger
from . import distributed

log = get_logger(__name__)


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


def _path_loaders(
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
    """Loaders over what :class:`~fastpolicy.loader.PolicyDALILoader` reads from paths: image
    folders, file lists, :class:`ImageList` s, shards (patterns, folders, lists) or a
    :class:`ShardDataset`; val is centre-cropped. ``checks``: ``verify``, ``on_bad``,
    ``max_pixels`` for both (see :func:`~fastpolicy.data.files.check_files`)."""
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
    return train_loader, val_loader, _class_count(train_loader.dataset, val_loader.dataset, (train, val)), 3


def _class_count(train, val, given) -> int:
    """The classes of a pair of datasets: the folders' class count (which must be the same
    in both), a shard dataset's :meth:`~ShardDataset.class_count` (TFRecord labels read
    once, on rank 0, where opening did not read them), the larger of the two otherwise; two
    shard sets must hold the same class map (their manifests')."""
    if isinstance(train, FileDataset) and isinstance(val, FileDataset):
        if val.images.classes != train.images.classes:
            names = [d if isinstance(d, str) else "the split's part" for d in reversed(given)]
            raise ValueError(f"{names[0]} and {names[1]} hold different class folders")
        return len(train.images.classes)
    if isinstance(train, ShardDataset) and isinstance(val, ShardDataset):
        labels = [d if isinstance(d, str) else "the split's part" for d in given]
        check_same_classes(train.classes, val.classes, (labels[0], labels[1]))
    return max(_classes(train), _classes(val))


def _classes(dataset) -> int:
    if isinstance(dataset, FileDataset):
        return len(dataset.images.classes)
    count = dataset.class_count()
    if count is None:  # the same on every rank: rank 0 reads the labels, the others wait for its count
        error = None
        if distributed.is_main():
            try:
                count = dataset.class_count(read=True)
            except ValueError as raised:  # BadShardError: the others must not wait for a count
                error = raised
        count, message = distributed.broadcast_object((count, None if error is None else str(error)))
        if error is not None:
            raise error
        if message is not None:
            raise ValueError(f"rank 0 could not count the classes: {message}")
    return count


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


def is_shards(data) -> bool:
    """Whether ``data`` names webdataset or TFRecord shards (a brace pattern, a glob, a folder
    of shards, a shard or a list of them; :func:`~fastpolicy.data.shards.list_shards`)."""
    return data is not None and list_shards(data) is not None


def is_class_folder(data) -> bool:
    """Whether ``data`` is a plain folder of class folders (``DIR/cats/*.jpg``, torchvision's
    ``ImageFolder`` layout): a folder without ``train/``, not shards, not CIFAR, with sub-folders."""
    if not isinstance(data, (str, os.PathLike)) or not os.path.isdir(data) or is_shards(data):
        return False
    if os.path.isdir(os.path.join(data, "train")) or cifar.detect(os.fspath(data)) is not None:
        return False
    return any(entry.is_dir() for entry in os.scandir(os.fspath(data)))


def _train_part(data) -> str:
    """The training data of a ``data`` that is no in-memory dataset: the shards themselves,
    ``data/train`` (an image folder or a folder of shards), or a folder of classes itself."""
    if is_shards(data) or is_class_folder(data):
        return data
    train_dir = os.path.join(data, "train")
    if not os.path.isdir(train_dir):
        raise FileNotFoundError(
            f"{data} needs class folders (DIR/<class>/<image>), train/ and val/ folders (image folders or folders "
            f"of .tar / .tfrecord shards), CIFAR's Python batches, or is shards itself; {train_dir} is missing"
        )
    return train_dir


def _val_part(data, val_data):
    """The held-out data for :func:`build_loaders`: ``val_data`` if given, else ``data/val``;
    shards given as ``data`` need ``val_data``."""
    if val_data is not None:
        return val_data
    if is_shards(data):
        raise ValueError(
            f"--data {data} names shards: give the held-out shards with --val-data (val_data), or put the "
            "shards in FOLDER/train/ and FOLDER/val/ and pass --data FOLDER"
        )
    val_dir = os.path.join(data, "val")
    if not os.path.isdir(val_dir):
        raise FileNotFoundError(
            f"{data} needs ImageNet-layout train/ and val/ folders (or --val-data); {val_dir} is missing"
        )
    return val_dir


VAL_FRACTION = 0.1
"""The share of each class held out for validation when a folder of classes has no ``val/``."""


def held_out_count(labels: np.ndarray) -> int:
    """Images :func:`held_out` takes from ``labels`` (int [n])."""
    return sum(_per_class(int((labels == c).sum())) for c in np.unique(labels))


def _per_class(members: int) -> int:
    """Held out of a class of ``members`` images: :data:`VAL_FRACTION` of them, rounded, at least
    one when the class has two or more (a class of one stays in training)."""
    return 0 if members < 2 else max(1, round(VAL_FRACTION * members))


def held_out(labels, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)``: sorted int64 indices into ``labels`` (int [n]); each class gives
    :func:`_per_class` images to ``val``, drawn by a permutation seeded by ``seed``."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 23])
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        val.append(rng.permutation(members)[: _per_class(len(members))])
    chosen = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(len(labels)), chosen), chosen


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
    val_data=None,
):
    """``(train, val, num_classes, channels)``.

    Args:
        data: None for Fashion-MNIST (``/usr/share/datasets/fashion-mnist``: train split for
            training, test split for validation), a CIFAR-10/100 folder in its Python format
            (train and test batches; :mod:`fastpolicy.data.cifar`), a folder with
            ``train/`` and ``val/`` subfolders (ImageNet-layout image folders or folders of
            shards), or shards (a brace pattern, a glob, a folder of shards, a list).
        val_data: the held-out data instead of ``data/val`` (needed for shards given as
            ``data``): anything the loader reads, e.g. ``val-{000000..000049}.tar``.
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
    if arrays is not None and val_data is not None:
        raise ValueError(
            "--val-data (val_data) is for image folders and shards; Fashion-MNIST and CIFAR use their test split"
        )
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
    if (train_subset is not None or val_subset is not None) and distributed.is_main():
        log.warning(
            f"fastpolicy: --subset/--val-subset ({train_subset}, {val_subset}) apply to Fashion-MNIST and CIFAR; "
            f"ignored for {data} (pass a smaller folder or fewer shards)"
        )
    assert data is not None  # the in-memory datasets returned above
    if is_class_folder(data) and val_data is None:
        files = scan_folder(data, on_bad=(checks or {}).get("on_bad", "raise"))
        train_rows, val_rows = held_out(files.labels, seed)
        if not len(val_rows) or not len(train_rows):
            raise ValueError(f"{data}: too few images to hold out a validation split; add images or pass --val-data")
        if distributed.is_main():
            log.info(
                f"fastpolicy: {data} is a folder of {len(files.classes)} classes: {len(val_rows)} of its "
                f"{len(files.files)} images ({VAL_FRACTION:.0%} of each class, drawn with --seed {seed}) are held out "
                "for validation; --val-data names another folder instead"
            )

        def part(rows) -> ImageList:
            return ImageList([files.files[i] for i in rows], files.labels[rows], files.classes)

        train: ImageList | str = part(train_rows)
        val = part(val_rows)
    else:
        train, val = _train_part(data), _val_part(data, val_data)
    return _path_loaders(train, val, batch, M, image_size, device, seed, num_threads, backend, shard, checks, augment)


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
        data: None (Fashion-MNIST's train split), a CIFAR folder (its train batches), a
            folder whose ``train/`` is split (images or shards), or shards (split by sample).
        val_count: images held out for validation (the search's reward).
        train_subset: train on at most this many of the remaining images (None: all).
        seed: seeds the split (and the loaders unless ``loader_seed`` is given).
        Others as :func:`build_loaders`.

    ``split`` (JSON-ready): ``{"dataset", "seed", "train", "val"}`` — indices into the
    Fashion-MNIST train split, file paths relative to ``<data>/train``, or shard samples as
    ``"<shard file name>/<sample key>"`` (:meth:`ShardDataset.names`).
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
    source = _train_part(data)
    if is_shards(source):
        samples = ShardDataset.open(source, ShardKeys(), FileChecks(**(checks or {})))
        train, val = split_indices(len(samples), val_count, seed, train_subset)
        loaders = _path_loaders(
            samples.subset(train),
            samples.subset(val),
            batch,
            M,
            image_size,
            device,
            loader_seed,
            num_threads,
            backend,
            shard,
            checks,
            augment,
        )
        names = samples.names()
        where = os.path.abspath(source) if isinstance(source, (str, os.PathLike)) else samples.shards
        split = {"dataset": where, "seed": seed, "train": [names[i] for i in train], "val": [names[i] for i in val]}
        return (*loaders, split)
    files = scan_folder(source, on_bad=(checks or {}).get("on_bad", "raise"))
    train, val = split_indices(len(files), val_count, seed, train_subset)

    def part(indices) -> ImageList:
        return ImageList([files.files[i] for i in indices], files.labels[indices], files.classes)

    loaders = _path_loaders(
        part(train), part(val), batch, M, image_size, device, loader_seed, num_threads, backend, shard, checks, augment
    )
    relative = [os.path.relpath(path, source) for path in files.files]
    return (
        *loaders,
        {
            "dataset": os.path.abspath(source),
            "seed": seed,
            "train": [relative[i] for i in train],
            "val": [relative[i] for i in val],
        },
    )


__all__ = [
    "VAL_FRACTION",
    "balanced_subset",
    "build_loaders",
    "build_search_loaders",
    "held_out",
    "held_out_count",
    "is_class_folder",
    "is_shards",
    "split_indices",
]
