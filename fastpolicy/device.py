"""Device names, resolved in one place: ``"gpu"``, ``"cpu"`` or None (the GPU if torch sees one).

The loader and the stages speak in names (:func:`resolve_device`); training code needs a
torch device (:func:`torch_device`), derived from the same resolution.
"""

from __future__ import annotations

import torch

DEVICES = ("cpu", "gpu")
"""Device names a user may give (None: :func:`resolve_device` picks)."""


def resolve_device(device: str | None) -> str:
    """``"gpu"`` or ``"cpu"``; None: the GPU if torch sees one. Raises ValueError naming the
    value for anything else, or for ``"gpu"`` without a CUDA GPU."""
    if device is None:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu', 'gpu' or None (auto), got {device!r}")
    if device == "gpu" and not torch.cuda.is_available():
        raise ValueError("device 'gpu' asked for, but torch sees no CUDA GPU")
    return device


def torch_device(device: str | None) -> torch.device:
    """The torch device of :func:`resolve_device`'s answer: this process's current CUDA device
    on a GPU (under ``torchrun``, the rank's), else the CPU."""
    if resolve_device(device) == "gpu":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """The name (``"gpu"`` / ``"cpu"``) of a torch device."""
    return "gpu" if device.type == "cuda" else "cpu"
