"""Atomic file writes: a temporary file beside the target, flushed to disk, renamed over it.

A crash (or a kill) during a write leaves the previous version of the file or the new
one, never half a file. Every artefact of a run goes through here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import IO, Any

from .errors import DiskFullError


def atomic_write(path: str, write: Callable, mode: str = "wb") -> None:
    """Call ``write(handle)`` on a temporary file beside ``path`` (opened with ``mode``), flush
    it to disk, then rename it over ``path``; on any error the temporary file is removed and
    ``path`` is untouched."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        handle: IO[Any]
        with os.fdopen(
            descriptor, mode, encoding=None if "b" in mode else "utf-8", newline=None if "b" in mode else ""
        ) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        if _out_of_space(error, folder):
            raise DiskFullError(
                f"{path}: no space left on the device of {folder} (or over quota); free some space and "
                "resume — the previous version of the file is kept",
            ) from error
        raise


def _out_of_space(error: BaseException, folder: str) -> bool:
    """Whether a failed write failed for want of space: ENOSPC/EDQUOT, or a serializer's write
    error (torch reports one without its errno) while the device has less than 16 MiB free."""
    if isinstance(error, DiskFullError):
        return False
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    if isinstance(error, (RuntimeError, OSError)) and "writ" in str(error).lower():
        try:
            return shutil.disk_usage(folder).free < 16 * 2**20
        except OSError:
            return False
    return False


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(text), mode="w")


def write_json(path: str, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (non-JSON values as ``str``)."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def save_figure(figure, path: str, **options) -> None:
    """``figure.savefig`` to ``path`` atomically (format from the file name)."""
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    atomic_write(path, lambda handle: figure.savefig(handle, format=fmt, **options))


def savez(path: str, **arrays) -> None:
    """``numpy.savez_compressed`` to ``path`` atomically."""
    import numpy as np

    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))


__all__ = ["atomic_write", "save_figure", "savez", "write_json", "write_text"]
