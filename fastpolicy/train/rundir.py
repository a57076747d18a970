"""A run's folder: its name, its creation, atomic writes of its files, and refusal to clobber.

* :func:`new_run_folder` — ``runs/<kind>-<YYYYmmdd-HHMMSS>-<6 hex>``: two runs started in the
  same second never share a folder.
* :func:`prepare` — a run starts in an empty (or new) folder; a folder that already holds
  a run is refused unless the run is *resumed* (``--resume``) or *replaced*
  (``--overwrite``, which deletes only folders marked as fastpolicy runs by their
  ``run.json``).

Every artefact in it (JSON, CSV, NPZ, PNG, checkpoints) is written through
:mod:`fastpolicy.atomic`, so a crash leaves the previous version or the new one, never half a file.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil

from ..atomic import write_json
from ..errors import UserError

KINDS = ("adversarial", "aws", "train")
"""The kinds of run: the name of its default folder (``runs/<kind>-<time>``) and ``run.json``'s
``fastpolicy_run`` (what ``fastpolicy show`` prints)."""

MARKER = "run.json"
"""The file that marks a folder as a fastpolicy run (what it is, when it started)."""


def kind_of(recorded: str) -> str:
    """The run kind of a ``run.json``'s ``fastpolicy_run``: runs before the kind was one word
    recorded ``adversarial-<mode>`` (``adversarial-baseline`` …), read as ``adversarial``."""
    return "adversarial" if recorded.startswith("adversarial-") else recorded


class RunFolderError(UserError, ValueError):
    """A run folder cannot be used as asked; the message names it and says what to do."""


def new_run_folder(kind: str, root: str = "runs") -> str:
    """A new folder name ``<root>/<kind>-<YYYYmmdd-HHMMSS>-<6 hex>`` that does not exist yet:
    the random part keeps two runs started in the same second apart (the run creates it
    with :func:`prepare`, so a run refused before it starts leaves nothing behind)."""
    while True:
        path = os.path.join(root, f"{kind}-{datetime.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}")
        if not os.path.exists(path):
            return path


def check(out: str, resume: bool, overwrite: bool = False) -> None:
    """Raise :class:`RunFolderError` if ``out`` cannot be used as asked (changes nothing).

    ``resume``: ``out`` must be a folder (its checkpoint is checked by the run).
    Otherwise ``out`` must be new or empty; a non-empty one needs ``overwrite`` and must
    be a fastpolicy run (hold :data:`MARKER`) — nothing else is ever deleted.
    """
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out} is a file, not a folder")
    if resume:
        if not os.path.isdir(out):
            raise RunFolderError(f"--resume: there is no run to continue in {out} (no such folder)")
        return
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise RunFolderError(
                f"{out} already holds files (a run?); pass --resume to continue its run or "
                "--overwrite to replace it, or choose another --out"
            )
        if not os.path.isfile(os.path.join(out, MARKER)):
            raise RunFolderError(
                f"--overwrite: {out} is not a fastpolicy run folder (no {MARKER}); refusing to "
                "delete it — choose another --out"
            )


def prepare(out: str, kind: str, resume: bool, overwrite: bool = False, settings: dict | None = None) -> None:
    """:func:`check` ``out``, then make it ready: kept as is on resume; else emptied (with
    ``overwrite``) or created, and marked with :data:`MARKER` (``kind``, start time, ``settings``)."""
    check(out, resume, overwrite)
    if resume:
        return
    if os.path.isdir(out) and overwrite:
        for entry in os.scandir(out):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
    os.makedirs(out, exist_ok=True)
    write_json(
        os.path.join(out, MARKER),
        {
            "fastpolicy_run": kind,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "settings": settings or {},
        },
    )


def continue_or_restart(out: str, checkpoint_name: str = "checkpoint.pt") -> dict:
    """``{"resume", "overwrite"}`` for a run a study owns: resumed from its checkpoint if it has
    one, else (never started, or killed before its first checkpoint) started over."""
    resume = os.path.exists(os.path.join(out, checkpoint_name))
    return {"resume": resume, "overwrite": not resume}


__all__ = ["KINDS", "MARKER", "RunFolderError", "check", "continue_or_restart", "kind_of", "new_run_folder", "prepare"]
