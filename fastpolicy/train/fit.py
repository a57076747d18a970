"""A run's settings fitted to the user's own data (``--data DIR`` without ``--preset``).

:func:`fit_to_data` looks at the training images once — how many, how large — and returns the
``folder`` preset's batch and image size for them (and, for AWS, the held-out count), so that a
folder of 32 images and one of 100 000 both train with one flag. The ImageNet recipes are taken
only when named (``--preset imagenet_resnet50``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .presets import get_preset

FOLDER_PRESET = "folder"
"""The preset a run with ``--data`` and no ``--preset`` takes."""
MAX_SIDE = 64
"""The largest image side the fitted small CNN trains at (px): the median image side, rounded down
to a multiple of 8, capped here (a CPU-sized model)."""
MIN_SIDE = 16
SIDE_SAMPLE = 64
"""Images whose sizes are read (their headers only) to take the median side."""


@dataclass(frozen=True)
class Fitted:
    """What :func:`fit_to_data` chose: ``batch`` (N), ``image_size`` (px), ``val_count`` (AWS's
    held-out images), from ``images`` training images whose median side is ``median_side`` px."""

    images: int
    median_side: int | None
    batch: int
    image_size: int
    val_count: int

    def describe(self, data: str) -> str:
        size = f"median side {self.median_side} px" if self.median_side else "sizes unread (shards)"
        preset = get_preset(FOLDER_PRESET)
        return (
            f"fastpolicy: --data {data}: {self.images} training images ({size}) → preset {FOLDER_PRESET}: the small "
            f"CNN at {self.image_size} px, batch {self.batch} (lr {preset.lr * self.batch / preset.batch:g}, scaled "
            f"from {preset.lr:g} at {preset.batch}), M {preset.M}, {preset.epochs} epochs; the ImageNet recipes need "
            "--preset imagenet_resnet50"
        )


def _training_files(data: str):
    """The training part of ``data`` as an :class:`~fastpolicy.data.files.ImageList`, or None for shards."""
    from ..data.files import scan_folder
    from .data import _train_part, is_shards

    source = _train_part(data)
    if is_shards(source):
        return None
    return scan_folder(source, on_bad="skip")


def median_side(paths: list[str], sample: int = SIDE_SAMPLE) -> int | None:
    """The median of min(width, height) over up to ``sample`` of ``paths`` (evenly spaced; headers
    only). None when none can be read."""
    from PIL import Image

    if not paths:
        return None
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, min(sample, len(paths))).astype(int)]
    sides = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the file checks name such files
        for path in chosen:
            try:
                with Image.open(path) as image:
                    sides.append(min(image.size))
            except (OSError, ValueError, Image.DecompressionBombError):
                continue  # a bad file: the run's file checks name it
    return int(np.median(sides)) if sides else None


def fit_to_data(data: str, search: bool = False, val_data: str | None = None) -> Fitted:
    """Batch, image size and AWS's held-out count for the training images of ``data`` (a folder of
    class folders, ``train/`` + ``val/``, or shards): the batch is the largest power of two ≤ 64
    that leaves four batches an epoch of the images that train; the image size the median side,
    rounded down to a multiple of 8 within [:data:`MIN_SIDE`, :data:`MAX_SIDE`] (64 for shards, whose
    sizes are not read). What trains: a search (``search``: AWS) holds ``val_count`` (a tenth, at
    most 512) of the training images out; a folder of classes without ``val_data`` its
    :func:`~.data.held_out` share; otherwise all of them."""
    from .data import held_out_count, is_class_folder

    files = _training_files(data)
    if files is None:
        from ..loader import ShardDataset
        from .data import _train_part

        images, side = len(ShardDataset.open(_train_part(data))), None
    else:
        images, side = len(files.files), median_side(list(files.files))
    val_count = max(1, min(512, images // 10))
    if search:
        training = images - val_count
    elif files is not None and val_data is None and is_class_folder(data):
        training = images - held_out_count(np.asarray(files.labels))
    else:
        training = images
    preset = get_preset(FOLDER_PRESET)
    batch = 1
    while batch * 2 <= min(preset.batch, max(1, training // 4)):
        batch *= 2
    size = preset.image_size if side is None else int(np.clip(side // 8 * 8, MIN_SIDE, MAX_SIDE))
    return Fitted(training, side, batch, size, val_count)


__all__ = ["FOLDER_PRESET", "MAX_SIDE", "MIN_SIDE", "Fitted", "fit_to_data", "median_side"]
