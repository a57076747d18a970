"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (IDX files, gzip), the default dataset.

Nothing is downloaded: the files must be installed (``apt-get install dataset-fashion-mnist``)
or passed by folder.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
"""Where Debian's package installs the IDX files."""

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str) -> np.ndarray:
    """An IDX array of unsigned bytes (gzip or plain); raises naming ``path`` if malformed."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found; install Debian's dataset-fashion-mnist package or pass root="
        ) from None
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot read ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise ValueError(f"{path}: {len(data) - header} data bytes for shape {shape} (truncated or corrupt)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load(split: str = "train", root: str = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8[N, 28, 28, 1], labels int64[N])`` of ``split`` ("train": 60 000, "test": 10 000)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    image_file, label_file = (os.path.join(root, name) for name in _FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{image_file} and {label_file} do not hold matching images and labels")
    return images[..., None], labels.astype(np.int64)
