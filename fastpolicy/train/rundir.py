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


COMMANDS = {"adversarial": "fastpolicy search adversarial", "aws": "fastpolicy search aws", "train": "fastpolicy train"}
"""The command that starts (and, with ``--out RUN --resume``, continues) each kind of run."""


def resume_command(kind: str, out: str) -> str:
    """The command line that continues the run of ``kind`` in ``out`` (its settings come from its
    ``config.yaml``)."""
    return f"{COMMANDS.get(kind, 'fastpolicy ' + kind)} --out {out} --resume"


def recorded_kind(out: str) -> str | None:
    """The run kind ``out``'s :data:`MARKER` records (None: no readable marker)."""
    import json

    try:
        with open(os.path.join(out, MARKER), encoding="utf-8") as handle:
            kind = json.load(handle).get("fastpolicy_run")
    except (OSError, ValueError, AttributeError):
        return None
    return kind_of(kind) if isinstance(kind, str) else None


def check_kind(out: str, kind: str) -> None:
    """Raise :class:`RunFolderError` if ``out`` holds a run of another kind than ``kind``."""
    recorded = recorded_kind(out)
    if recorded is not None and recorded != kind:
        raise RunFolderError(
            f"--resume: {out} holds an {recorded} run, not a{'n' if kind[0] in 'aeiou' else ''} {kind} run; "
            f"continue it with: {resume_command(recorded, out)}"
        )


def _nearest_folder(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


def check_writable(out: str) -> None:
    """Raise :class:`RunFolderError` if the run folder ``out`` (or, if new, the folder it goes in)
    cannot be written: a read-only filesystem or missing permission (a probe file is made and removed)."""
    import tempfile

    folder = _nearest_folder(out)
    try:
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=".fastpolicy-probe-")
    except OSError as error:
        where = "the run folder" if folder == os.path.abspath(out) else f"{folder}, where it would be made,"
        raise RunFolderError(f"--out {out}: {where} is not writable ({error.strerror})") from None
    os.close(descriptor)
    os.remove(probe)


def check(out: str, resume: bool, overwrite: bool = False, kind: str | None = None) -> None:
    """Raise :class:`RunFolderError` if ``out`` cannot be used as asked (changes nothing but a
    probe file, :func:`check_writable`).

    ``resume``: ``out`` must be a folder holding a run of this ``kind`` (if given; its
    checkpoint is checked by the run). Otherwise ``out`` must be new or empty; a non-empty one
    needs ``overwrite`` and must be a fastpolicy run (hold :data:`MARKER`) — nothing else is
    ever deleted. Either way it must be writable.
    """
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out} is a file, not a folder")
    if resume:
        if not os.path.isdir(out):
            raise RunFolderError(f"--resume: there is no run to continue in {out} (no such folder)")
        if kind is not None:
            check_kind(out, kind)
        check_writable(out)
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
    check_writable(out)


def prepare(out: str, kind: str, resume: bool, overwrite: bool = False, settings: dict | None = None) -> None:
    """:func:`check` ``out``, then make it ready: kept as is on resume; else emptied (with
    ``overwrite``) or created, and marked with :data:`MARKER` (``kind``, start time, ``settings``)."""
    check(out, resume, overwrite, kind)
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


def snapshot(out: str) -> set[str] | None:
    """Every path under ``out`` (None: no such folder), for :func:`remove_new`."""
    if not os.path.isdir(out):
        return None
    paths: set[str] = set()
    for folder, folders, files in os.walk(out):
        paths.update(os.path.join(folder, name) for name in folders + files)
    return paths


def remove_new(out: str, before: set[str] | None) -> None:
    """Remove what was made under ``out`` since :func:`snapshot` returned ``before`` (and ``out``
    itself if it did not exist then): a run refused while starting leaves nothing behind."""
    if before is None:
        shutil.rmtree(out, ignore_errors=True)
        return
    after = snapshot(out) or set()
    for path in sorted(after - before, key=len, reverse=True):  # files inside a new folder first
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
        except OSError:
            pass


def continue_or_restart(out: str, checkpoint_name: str = "checkpoint.pt") -> dict:
    """``{"resume", "overwrite"}`` for a run a study owns: resumed from its checkpoint if it has
    one, else (never started, or killed before its first checkpoint) started over."""
    resume = os.path.exists(os.path.join(out, checkpoint_name))
    return {"resume": resume, "overwrite": not resume}


__all__ = [
    "COMMANDS",
    "KINDS",
    "MARKER",
    "RunFolderError",
    "check",
    "check_kind",
    "check_writable",
    "continue_or_restart",
    "kind_of",
    "new_run_folder",
    "prepare",
    "recorded_kind",
    "remove_new",
    "resume_command",
    "snapshot",
]
