"""Train and validation loaders of a search: Fashion-MNIST (the embedded default) or an image folder."""

from __future__ import annotations

import os


from ..data import fashion_mnist
from ..loader import PolicyDALILoader


def build_loaders(data: str | None, batch: int, M: int, image_size: int, device: str, seed: int,
                  train_subset: int | None = None, val_subset: int | None = None, num_threads: int = 2,
                  backend: str | None = None):
    """``(train, val, num_classes, channels)``.

    Args:
        data: None for Fashion-MNIST (``/usr/share/datasets/fashion-mnist``: train split for
            training, test split for validation), or a folder with ImageNet-layout
            ``train/`` and ``val/`` subfolders.
        batch: N per step; the train loader yields M·N rows, the val loader N (M = 1,
            no policy; Fashion-MNIST unaugmented, folders centre-cropped).
        train_subset, val_subset: use only the first this many images (None: all).
    """
    if data is None:
        images, labels = fashion_mnist.load("train")
        val_images, val_labels = fashion_mnist.load("test")
        images, labels = images[:train_subset], labels[:train_subset]
        val_images, val_labels = val_images[:val_subset], val_labels[:val_subset]
        scaled = images.reshape(-1, images.shape[-1]) / 255.0
        norm = {"mean": tuple(scaled.mean(0)), "std": tuple(scaled.std(0))}  # the training images' own
        train = PolicyDALILoader.from_arrays(images, labels, batch_size=batch, M=M, device=device, seed=seed,
                                             num_threads=num_threads, backend=backend, **norm)
        val = PolicyDALILoader.from_arrays(val_images, val_labels, batch_size=min(batch * M, len(val_images)), M=1,
                                           device=device, seed=seed, baseline="none", shuffle=False,
                                           drop_last=False, num_threads=num_threads, **norm)
        return train, val, int(labels.max()) + 1, images.shape[-1]
    if train_subset is not None or val_subset is not None:
        raise ValueError("train_subset/val_subset apply to Fashion-MNIST; pass a smaller folder instead")
    train_dir, val_dir = os.path.join(data, "train"), os.path.join(data, "val")
    for path in (train_dir, val_dir):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{data} needs ImageNet-layout train/ and val/ folders; {path} is missing")
    train = PolicyDALILoader(train_dir, batch_size=batch, M=M, image_size=image_size, device=device, seed=seed,
                             num_threads=num_threads, backend=backend)
    val = PolicyDALILoader(val_dir, batch_size=batch, M=1, image_size=image_size, device=device, seed=seed,
                           baseline="center", shuffle=False, drop_last=False, num_threads=num_threads)
    if val.images_list.classes != train.images_list.classes:
        raise ValueError(f"{val_dir} and {train_dir} hold different class folders")
    return train, val, len(train.images_list.classes), 3


__all__ = ["build_loaders"]
