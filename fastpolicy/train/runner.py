"""What every run shares, in one place: its folder, its process group, its device, its
checkpoints (with the settings and data checks) and its logs.

A run kind (the adversarial search, the AWS search, the final training) makes one
:class:`Run` and declares only what differs: its kind (one word of :data:`KINDS`), its
config, how it builds its model and loaders, its own state and its artefacts. The epoch
loop they all go through is :class:`~.trainer.EpochTrainer`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass

from ..config import excerpt, setting
from ..device import device_name, torch_device
from ..log import get as get_logger
from . import checkpoint, distributed, rundir
from .checkpoint import CheckpointError
from .logs import RunLog
from .presets import Preset
from .rundir import KINDS, kind_of

log = get_logger(__name__)


RESUME_IGNORED = ("out", "progress", "num_threads", "verify", "max_pixels", "on_bad")
"""Config fields a resumed run may change (what the file checks drop shows in the data
fingerprint, which must not change). ``epochs`` is not one of them: the learning-rate
schedule spans the run's epochs, so another value would change the epochs already
trained; a resumed run with another ``epochs`` is refused (start a new run instead)."""


def file_checks(config) -> dict:
    """The loader's file-check options (``verify``, ``on_bad``, ``max_pixels``) of a run config."""
    return {"verify": config.verify, "on_bad": config.on_bad, "max_pixels": config.max_pixels}


def check_same_settings(saved: dict, current: dict, path: str, ignored=RESUME_IGNORED) -> None:
    """Raise :class:`CheckpointError` naming every setting (checkpoint's value → this run's)
    that differs between a checkpoint's config and this run's."""
    saved = {k: v for k, v in saved.items() if k not in ignored}
    current = {k: v for k, v in current.items() if k not in ignored}

    # tuples come back from a checkpoint as they went in, lists as lists: compare as lists
    def norm(value):
        return list(value) if isinstance(value, tuple) else value

    changed = sorted(k for k in set(saved) | set(current) if norm(saved.get(k)) != norm(current.get(k)))
    if changed:
        detail = ", ".join(f"{k}: {excerpt(saved.get(k))} → {excerpt(current.get(k))}" for k in changed[:6])
        if len(changed) > 6:
            detail += f" and {len(changed) - 6} more"
        why = (
            " (the learning-rate schedule spans the run's epochs; start a new run for another length)"
            if "epochs" in changed
            else ""
        )
        raise CheckpointError(f"{path} was written with other settings ({detail}){why}; resume with the same options")


_KIND_NAMES = {
    "files": "files",
    "arrays": "array images",
    "webdataset": "webdataset samples",
    "tfrecord": "TFRecord samples",
}
"""How a data fingerprint's kind is named in a refusal."""


def check_same_data(saved: dict | None, current: dict, path: str) -> None:
    """Raise :class:`CheckpointError` if a checkpoint's data fingerprints (``{"train": …,
    "val": …}`` of :meth:`~fastpolicy.loader.PolicyDALILoader.fingerprint`) differ from this run's."""
    if saved is None:
        raise CheckpointError(
            f"{path} records no data fingerprint (written by an older fastpolicy); "
            "it cannot be checked against this run's data — start a new run"
        )
    for part in sorted(set(saved) | set(current)):
        old, new = saved.get(part), current.get(part)
        if old != new:

            def describe(f):
                return (
                    "nothing"
                    if f is None
                    else f"{f['images']} {_KIND_NAMES.get(f['kind'], f['kind'])} (sha256 {f['sha256']})"
                )

            raise CheckpointError(
                f"{path}: the {part} data differ from the checkpoint's: {describe(old)} then, "
                f"{describe(new)} now; resume with the same --data, --val-data and --subset"
            )


def open_run_folder(out: str, kind: str, resume: bool, overwrite: bool, settings: dict | None = None) -> None:
    """Every rank checks ``out`` (:func:`.rundir.check`: refused unless new, empty, resumed or
    overwritten); rank 0 prepares it (:func:`.rundir.prepare`); all return once it is ready."""
    rundir.check(out, resume, overwrite, kind)
    distributed.barrier()  # every rank has looked before rank 0 changes anything
    if distributed.is_main():
        rundir.prepare(out, kind, resume, overwrite, settings)
    distributed.barrier()


class Run:
    """One run's frame: ``Run(config, kind, resume=…, overwrite=…)`` joins the process group
    (under ``torchrun``), owns the folder ``config.out`` (:func:`open_run_folder`) and resolves
    the device.

    Args:
        config: the run's config dataclass (``out``, ``device``, ``seed``, ``progress`` and the
            file checks at least); saved with every checkpoint, a resumed run must match it.
        kind: one of :data:`KINDS`.
        resume: continue the run in ``config.out`` from its checkpoints.
        overwrite: replace the run in ``config.out`` (see :mod:`.rundir`).
        resume_ignored: config fields a resumed run may change (default :data:`RESUME_IGNORED`).
    """

    def __init__(self, config, kind: str, *, resume: bool = False, overwrite: bool = False, resume_ignored=None):
        if kind not in KINDS:
            raise ValueError(f"run kind must be one of {KINDS}, got {kind!r}")
        self.config, self.kind, self.resume = config, kind, resume
        self.resume_ignored = RESUME_IGNORED if resume_ignored is None else tuple(resume_ignored)
        distributed.init_from_env(config.device)
        before = rundir.snapshot(config.out)
        open_run_folder(config.out, kind, resume, overwrite, dataclasses.asdict(config))
        self._before = before
        if _starting:  # a run kind's constructor is under way: undone with it if it fails
            _starting[-1].append(self)
        self.device = torch_device(config.device)
        self.device_name = device_name(self.device)
        log.debug(
            f"fastpolicy: {kind} run in {os.path.abspath(config.out)} ({'resumed' if resume else 'new'}); "
            f"device {self.device}, process {distributed.rank()} of {distributed.world_size()}"
        )

    @property
    def out(self) -> str:
        return self.config.out

    def discard(self) -> None:
        """Remove what this run made in its folder (the folder too, if it made it): called when the
        run is refused while it starts, so re-running the command or resuming finds what was there."""
        if distributed.is_main():
            rundir.remove_new(self.config.out, self._before)
            log.debug(f"fastpolicy: refused; removed what the run had made in {self.config.out}")

    def path(self, name: str) -> str:
        """``name`` inside the run folder."""
        return os.path.join(self.config.out, name)

    def info(self, message: str) -> None:
        """Log ``message`` at info level on rank 0."""
        if distributed.is_main():
            log.info(message)

    def loader_options(self, preset: Preset) -> dict:
        """This process's loader arguments: the per-rank ``batch`` (the preset's N is global), the
        ``shard`` ``(rank, world_size)``, the ``device`` name and the file ``checks``."""
        return {
            "batch": distributed.per_rank_batch(preset.batch),
            "shard": (distributed.rank(), distributed.world_size()),
            "device": self.device_name,
            "checks": file_checks(self.config),
        }

    def describe_loaders(self, name: str, train, val) -> None:
        """A debug line with the sizes of a pair of loaders."""
        log.debug(
            f"fastpolicy: {name} loaders: train {len(train)} batch(es) of {getattr(train, 'batch_size', '?')}, "
            f"val {len(val)} batch(es); backend {getattr(train, 'backend', '?')} on {self.device_name}"
        )

    def run_log(self, name: str) -> RunLog:
        """The CSV (and TensorBoard) log ``<out>/<name>.csv``, written by rank 0 only."""
        return RunLog(self.config.out, name, enabled=distributed.is_main())

    # -- checkpoints ---------------------------------------------------------------------

    def saved_settings(self) -> dict:
        return dataclasses.asdict(self.config)

    def save(self, name: str, state: dict, data: dict, loader) -> None:
        """Checkpoint ``<out>/<name>``: ``state`` with the config and the ``data`` fingerprints, plus
        every rank's ``loader`` position and RNG states (rank 0 writes; all ranks return once it is whole)."""
        path = self.path(name)
        checkpoint.save_distributed(path, {"config": self.saved_settings(), "data": data} | state, loader)
        log.debug(f"fastpolicy: wrote checkpoint {path}")

    def save_main(self, name: str, state: dict, data: dict) -> None:
        """Checkpoint ``<out>/<name>`` from rank 0 alone (no loader positions or RNG states)."""
        if distributed.is_main():
            path = self.path(name)
            checkpoint.save(path, {"config": self.saved_settings(), "data": data} | state)
            log.debug(f"fastpolicy: wrote checkpoint {path}")

    def load(self, name: str, data: dict) -> dict:
        """Checkpoint ``<out>/<name>`` after checking it was written with this run's settings
        (but :attr:`resume_ignored`) and on the same ``data``; :class:`CheckpointError` otherwise."""
        path = self.path(name)
        state = checkpoint.load(path)
        upgrade = getattr(type(self.config), "upgrade_saved", None)  # (a study's or AWS's config may have none)
        if upgrade is not None:
            state["config"] = upgrade(dict(state["config"]))
        try:
            check_same_settings(state["config"], self.saved_settings(), path, ignored=self.resume_ignored)
        except CheckpointError:
            # the same settings may be spelled out: a run started with its preset's defaults and
            # resumed with its own config.yaml (resolved values) is the same run
            saved, current = self._resolved(state["config"]), self._resolved(self.saved_settings())
            if saved is None or current is None:
                raise
            check_same_settings(saved, current, path, ignored=self.resume_ignored)
        check_same_data(state.get("data"), data, path)
        log.debug(f"fastpolicy: read checkpoint {path}")
        return state

    def _resolved(self, settings: dict) -> dict | None:
        """``settings`` (a config as a dict) with the preset's values filled in (the config's
        ``resolved_config()``), or None where they cannot be resolved."""
        kind = type(self.config)
        names = {field.name for field in dataclasses.fields(kind)}
        try:
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k in names}
            return dataclasses.asdict(kind(**values).resolved_config())
        except (AttributeError, TypeError, ValueError, OSError):
            return None

    def restore_loader(self, state: dict, name: str, loader) -> None:
        """This rank's ``loader`` position and RNG states from a :meth:`save` checkpoint."""
        checkpoint.restore_distributed(state, self.path(name), loader)


_starting: list[list[Run]] = []
"""The runs made by each run-kind constructor under way (innermost last)."""


def refused_runs_leave_nothing(init):
    """Decorate a run kind's ``__init__``: if it raises after its :class:`Run` prepared the folder
    (bad data, a checkpoint of another run, a bad setting found late), what the run made there is
    removed (:meth:`Run.discard`): no ``run.json`` blocks the same command again, no empty
    TensorBoard file is added by a refused ``--resume``."""

    @functools.wraps(init)
    def start(self, *args, **kwargs):
        made: list[Run] = []
        _starting.append(made)
        try:
            init(self, *args, **kwargs)
        except BaseException:
            for run in made:
                run.discard()
            raise
        finally:
            _starting.pop()

    return start


@dataclass
class StartOptions:
    """How a run starts, beside its settings: from a config file, resumed, or replacing a run."""

    config: str | None = setting(
        None,
        "settings from a YAML file (setting: value, a flag's name or a field's; a run's config.yaml repeats "
        "it); flags given beside it override it",
        metavar="YAML",
        shown="none",
    )
    resume: bool = setting(False, "continue the run in --out from its checkpoint", switch=True)
    overwrite: bool = setting(
        False, "replace the run in --out (deletes its files; only folders marked as fastpolicy runs)", switch=True
    )


__all__ = [
    "KINDS",
    "RESUME_IGNORED",
    "Run",
    "StartOptions",
    "check_same_data",
    "check_same_settings",
    "file_checks",
    "kind_of",
    "open_run_folder",
    "refused_runs_leave_nothing",
]
