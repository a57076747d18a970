"""Checkpoints that resume a run on the same trajectory: written atomically, RNG states included,
one file for all ranks under ``torchrun`` (each rank's loader position and RNG states inside).

Loading never runs code: every file is read with ``torch.load(weights_only=True)``, so a
checkpoint may hold only tensors and plain data (dicts, lists, tuples, numbers, strings,
bytes). :func:`save` converts NumPy arrays to tensors and NumPy scalars to Python numbers on
the way out (a restored array therefore comes back as a tensor), and RNG states are stored
in plain form. A file that holds anything else — a crafted pickle, say — is refused with
:class:`CheckpointError` naming it.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .. import atomic
from ..errors import UserError
from . import distributed


class CheckpointError(UserError, ValueError):
    """A checkpoint is missing, unreadable, unsafe, or of another run; the message names the file."""


def plain(value):
    """``value`` with NumPy arrays as tensors and NumPy scalars as Python numbers, recursively
    through dicts, lists and tuples (what ``torch.load(weights_only=True)`` reads back)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        converted = [plain(item) for item in value]
        return converted if isinstance(value, list) else tuple(converted)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, dtype=np.int64 if value.dtype == np.uint32 else None))
    if isinstance(value, np.generic):
        return value.item()
    return value


def rng_state() -> dict:
    """Python, NumPy-global and torch (CPU and CUDA) RNG states, as plain data and tensors."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = dict(numpy_state["state"], key=np.asarray(numpy_state["state"]["key"], dtype=np.uint32))
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str, state: dict) -> None:
    """``torch.save`` of :func:`plain` ``(state)``, atomically (temporary file, then rename):
    a crash never leaves half a checkpoint, and the last good one stays until the new one is whole."""
    atomic.atomic_write(path, lambda handle: torch.save(plain(state), handle))


def load(path: str) -> dict:
    """The checkpoint in ``path``, read without running code (``weights_only=True``);
    :class:`CheckpointError` names the file if it is missing, unreadable or unsafe."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint to resume from: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        globals_ = [line for line in lines if "GLOBAL" in line or "Unsupported global" in line]
        if globals_:  # the unpickler met a reference to a Python callable or class
            reason = (
                f"it holds a Python object, not only tensors and plain data, which could run code when "
                f"loaded; refused ({globals_[0]})"
            )
        else:
            after = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.endswith("WeightsUnpickler error:")]
            detail = after[0] if after else (lines[0] if lines else type(error).__name__)
            reason = f"not a readable fastpolicy checkpoint ({detail})"
        raise CheckpointError(f"{path}: {reason}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a fastpolicy checkpoint (holds a {type(state).__name__}, not a dict)")
    return state


def save_distributed(path: str, state: dict, loader) -> None:
    """Save ``state`` plus every rank's ``loader`` position and RNG states (rank order) from
    rank 0; all ranks return once the file is complete."""
    loaders = distributed.all_gather_object(loader.state_dict())
    rngs = distributed.all_gather_object(rng_state())
    if distributed.is_main():
        save(path, state | {"loader": loaders, "rng_state": rngs, "world_size": distributed.world_size()})
    distributed.barrier()


def restore_distributed(state: dict, path: str, loader) -> None:
    """This rank's loader position and RNG states from a :func:`save_distributed` checkpoint
    (CheckpointError if it was written by another number of processes)."""
    if state.get("world_size", 1) != distributed.world_size():
        raise CheckpointError(
            f"{path} was written by {state.get('world_size', 1)} process(es); resume it with "
            f"the same number (this run has {distributed.world_size()})"
        )
    loader.load_state_dict(state["loader"][distributed.rank()])
    set_rng_state(state["rng_state"][distributed.rank()])


__all__ = [
    "CheckpointError",
    "load",
    "plain",
    "restore_distributed",
    "rng_state",
    "save",
    "save_distributed",
    "set_rng_state",
]
