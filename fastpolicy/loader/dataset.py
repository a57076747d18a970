"""What the loader reads: image files or in-memory arrays, by dataset index.

A dataset knows its images, their labels (looked up by index: the source hands back
indices, never labels or paths), their size and channels where fixed, which baselines
suit it, and its fingerprint. :func:`open_dataset` turns the loader's ``data`` argument
into one.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from ..data.files import (
    SKIP_HINT,
    BadImageError,
    ImageList,
    check_files,
    describe_scan,
    read_file_list,
    scan_folder,
)
from ..data.shards import ShardKeys, list_shards
from ..data.stats import channel_stats
from ..log import get as get_logger
from .settings import BASELINES, FileChecks
from .shards import ShardDataset

log = get_logger(__name__)


class FileDataset:
    """Labelled image files, checked before DALI reads them.

    Attributes:
        images: the :class:`~fastpolicy.data.files.ImageList`; dataset index ``i`` is
            ``images.files[i]``.
        shape: None (the crops' size is the loader's ``image_size``).
        channels: 3 (decoded as RGB).
    """

    kind = "files"
    shape = None
    channels = 3
    default_baseline = "imagenet"
    baselines = ("imagenet", "center")

    def __init__(self, images: ImageList):
        self.images = images

    @classmethod
    def baseline(cls, baseline: str | None) -> str:
        """``baseline``, or the default (None); ValueError for one that needs arrays of one size."""
        baseline = baseline or cls.default_baseline
        if baseline not in cls.baselines:
            raise ValueError(
                f"baseline={baseline!r} is for in-memory arrays of one size; files use 'imagenet' or 'center'"
            )
        return baseline

    @classmethod
    def open(cls, data, checks: FileChecks, workers: int) -> FileDataset:
        """``data``: an ImageNet-layout folder (``root/<class>/<image>``), a file list
        (``path label`` lines) or an :class:`ImageList`; checked by ``checks`` with
        ``workers`` threads."""
        if isinstance(data, ImageList):
            images = data
        elif isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
            images = scan_folder(os.fspath(data), on_bad=checks.on_bad)
        elif isinstance(data, (str, os.PathLike)) and os.path.isfile(data):
            images = read_file_list(os.fspath(data))
        else:
            raise FileNotFoundError(f"{data!r} is neither a dataset folder nor a file list")
        # Dropping a bad file needs to know it is bad before DALI reads it (a decode error stops a
        # pipeline): on_bad="skip" decodes every file once, whatever verify says (stated in the docs)
        verify = "decode" if checks.on_bad == "skip" else checks.verify
        if verify != checks.verify:
            log.info(
                f"fastpolicy: on_bad='skip' (--on-bad skip): decoding each of the {len(images)} files once before "
                "training, so that a file that cannot be decoded is dropped, not fatal"
            )
        images = check_files(images, verify=verify, on_bad=checks.on_bad, workers=workers, max_pixels=checks.max_pixels)
        left_out = describe_scan(images)
        if left_out:
            log.warning(f"fastpolicy: {data if isinstance(data, (str, os.PathLike)) else 'image list'}: {left_out}")
        return cls(images)

    def __len__(self) -> int:
        return len(self.images)

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """int64[n]: the labels of dataset indices ``indices``."""
        return self.images.labels[indices]

    def fingerprint(self) -> dict:
        """``{"kind": "files", "images": count, "sha256": 16 hex}`` over the paths and labels."""
        digest = hashlib.sha256()
        for path, label in zip(self.images.files, self.images.labels.tolist()):
            digest.update(f"{path}\t{label}\n".encode("utf-8", "surrogateescape"))
        return {"kind": self.kind, "images": len(self), "sha256": digest.hexdigest()[:16]}

    def explain(self, error: Exception, workers: int) -> None:
        """Raise :class:`BadImageError` naming the files behind a failed DALI read (all files
        are decoded to find them); returns if all decode (``error`` was not theirs)."""
        message = str(error).splitlines()
        log.warning(
            f"fastpolicy: DALI failed to read a batch ({message[-1] if message else error}); "
            f"decoding all {len(self)} files to find the bad ones …"
        )
        try:
            check_files(self.images, verify="decode", on_bad="raise", workers=workers)
        except BadImageError as bad:
            raise BadImageError(bad.bad, hint=f"{SKIP_HINT} to drop them") from error


class ArrayDataset:
    """In-memory images of one size.

    Attributes:
        images: uint8 [N, H, W, C], C = 1 or 3.
        all_labels: int [N], non-negative.
        shape: (H, W); channels: C.
    """

    kind = "arrays"
    default_baseline = "pad_crop"
    baselines = BASELINES

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with C = 1 or 3, got {images.shape}")
        if min(images.shape[1:3]) < 1:
            raise ValueError(f"images must have a height and width ≥ 1, got shape {images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
            raise ValueError("labels must be non-negative integers")
        self.images, self.all_labels = images, labels
        self.shape: tuple[int, int] = images.shape[1:3]
        self.channels: int = images.shape[3]

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def baseline(cls, baseline: str | None) -> str:
        """``baseline``, or the default (None)."""
        return baseline or cls.default_baseline

    def labels(self, indices: np.ndarray) -> np.ndarray:
        """int64[n]: the labels of dataset indices ``indices``."""
        return self.all_labels[indices].astype(np.int32).astype(np.int64)

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel ``(mean, std)`` in [0, 1] units, over at most about 10,000 images."""
        return channel_stats(self.images[:: max(1, len(self.images) // 10000)])

    def fingerprint(self) -> dict:
        """``{"kind": "arrays", "images": count, "sha256": 16 hex}`` over the shape, the
        image bytes and the labels."""
        digest = hashlib.sha256()
        digest.update(str(self.images.shape).encode())
        digest.update(np.ascontiguousarray(self.images).data)
        digest.update(np.ascontiguousarray(self.all_labels, dtype=np.int64).data)
        return {"kind": self.kind, "images": len(self), "sha256": digest.hexdigest()[:16]}

    def explain(self, error: Exception, workers: int) -> None:
        """Nothing to find: arrays have no files."""


Dataset = FileDataset | ArrayDataset | ShardDataset


def open_dataset(data, checks: FileChecks, workers: int) -> Dataset:
    """``data`` as a dataset: a :class:`FileDataset`, :class:`ArrayDataset` or
    :class:`~.shards.ShardDataset` as it is; shards (a brace pattern, a folder of ``.tar`` or
    ``.tfrecord`` files, a list of them; default keys) as a ShardDataset; else files (a
    folder, a file list or an :class:`ImageList`; see :meth:`FileDataset.open`)."""
    if isinstance(data, (FileDataset, ArrayDataset, ShardDataset)):
        return data
    if data is None or not isinstance(data, (str, os.PathLike, list, tuple, ImageList)):
        raise TypeError(
            f"data must be a dataset folder, a file list, shards (a pattern, a folder or a list of .tar or "
            f".tfrecord files) or an ImageList, got {type(data).__name__}; in-memory arrays: "
            "PolicyDALILoader.from_arrays"
        )
    found = None if isinstance(data, ImageList) else list_shards(data)
    if found is not None:
        return ShardDataset(*found, ShardKeys(), checks)
    return FileDataset.open(data, checks, workers)
