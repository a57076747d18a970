"""CIFAR-10 and CIFAR-100 in their standard Python format, read without running code.

The folders people have are ``cifar-10-batches-py/`` (``data_batch_1`` … ``data_batch_5``,
``test_batch``, ``batches.meta``) and ``cifar-100-python/`` (``train``, ``test``, ``meta``):
pickled dicts whose ``data`` is a uint8 array [N, 3072] (the red, green and blue 32×32
planes, row-major) and whose labels are a list of ints. They are unpickled with a
restricted unpickler that builds only plain data and NumPy arrays — a file that names any
other Python object is refused — so a downloaded or shared folder cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

from ..errors import UserError

LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels": "labels",
        "names": "label_names",
        "classes": 10,
        "images": {"train": 50000, "test": 10000},
    },
    "cifar100": {
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels": "fine_labels",
        "names": "fine_label_names",
        "classes": 100,
        "images": {"train": 50000, "test": 10000},
    },
}
"""What each format's folder holds: batch files per split, the meta file, the label keys."""

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class CifarFormatError(UserError, ValueError):
    """A CIFAR folder or batch file is missing, partial, unsafe or malformed; the message names it."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _SafeUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
    except FileNotFoundError:
        raise CifarFormatError(f"{path}: missing (a CIFAR folder holds every batch file)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise CifarFormatError(f"{path}: not a CIFAR batch file ({error})") from None
    if not isinstance(data, dict):
        raise CifarFormatError(f"{path}: not a CIFAR batch file (holds a {type(data).__name__}, not a dict)")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in data.items()}


def detect(folder: str) -> str | None:
    """``"cifar10"``, ``"cifar100"`` or None: which format ``folder`` holds, by its meta file."""
    for name, layout in LAYOUTS.items():
        if os.path.isfile(os.path.join(folder, layout["meta"])):
            return name
    return None


def load(folder: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(images uint8 [N, 32, 32, 3], labels int64 [N], class names)`` of ``split``
    (``"train"`` or ``"test"``) from a CIFAR-10 or CIFAR-100 folder; CifarFormatError names
    the file that is missing or wrong."""
    kind = detect(folder)
    if kind is None:
        raise CifarFormatError(
            f"{folder}: not a CIFAR folder (no batches.meta or meta file; expected "
            "cifar-10-batches-py/ or cifar-100-python/)"
        )
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    layout = LAYOUTS[kind]
    meta_path = os.path.join(folder, layout["meta"])
    names = _read(meta_path).get(layout["names"])
    if not isinstance(names, list) or len(names) != layout["classes"]:
        raise CifarFormatError(f"{meta_path}: expected {layout['classes']} class names under {layout['names']!r}")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    images, labels = [], []
    for file in layout[split]:
        path = os.path.join(folder, file)
        batch = _read(path)
        data, batch_labels = batch.get("data"), batch.get(layout["labels"])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise CifarFormatError(
                f"{path}: 'data' must be a uint8 array [N, 3072], got "
                f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
            )
        batch_labels = np.asarray(batch_labels if batch_labels is not None else [], dtype=np.int64)
        if batch_labels.shape != (len(data),):
            raise CifarFormatError(f"{path}: {len(data)} images but {batch_labels.size} {layout['labels']!r}")
        if batch_labels.size and not 0 <= batch_labels.min() <= batch_labels.max() < layout["classes"]:
            raise CifarFormatError(f"{path}: labels outside 0..{layout['classes'] - 1}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(batch_labels)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), names


__all__ = ["LAYOUTS", "CifarFormatError", "detect", "load"]
