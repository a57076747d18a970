"""The epoch loop every run shares: target network, optimizer, LR schedule, logs, checkpoints, resume.

:class:`EpochTrainer` trains a model epoch by epoch on a :class:`~fastpolicy.loader.PolicyDALILoader`
(M·N rows per step), evaluates it, logs a row per epoch, and writes an atomic checkpoint
after every epoch from which ``resume=True`` continues on the same trajectory. Subclasses
choose the policies of each epoch (:meth:`EpochTrainer.start_epoch`) and act on its
result (:meth:`EpochTrainer.finish_epoch`): the Adversarial AutoAugment search, AWS's
stage 1, and the final training with a fixed policy.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import atomic
from ..data.files import DEFAULT_MAX_PIXELS
from ..device import device_name, torch_device
from ..log import get as get_logger
from . import checkpoint, distributed, loop, plots, rundir
from .checkpoint import CheckpointError
from .data import build_loaders
from .logs import RunLog
from .models import build_model
from .presets import Preset, get_preset

log = get_logger(__name__)

RESUME_IGNORED = ("out", "progress", "num_threads", "verify", "max_pixels", "on_bad")
"""Config fields a resumed run may change (what the file checks drop shows in the data
fingerprint, which must not change). ``epochs`` is not one of them: the learning-rate
schedule spans the run's epochs, so another value would change the epochs already
trained; a resumed run with another ``epochs`` is refused (start a new run instead)."""


@dataclass
class CommonConfig:
    """Settings every run has, declared once (each run's config adds its own; all saved with
    each checkpoint and in ``config.yaml``).

    Attributes:
        out: output folder (checkpoint, CSV, TensorBoard, plots).
        preset: a :class:`~.presets.Preset` name (its model, batch, M, lr, epochs …).
        data: None (Fashion-MNIST), a CIFAR-10/100 folder in its Python format
            (``cifar-10-batches-py/``, ``cifar-100-python/``), or a folder with ``train/`` and ``val/``.
        model, batch, train_subset: override the preset.
        device: ``"cpu"``, ``"gpu"`` or None (GPU if available).
        seed: seeds the model, the loaders and the policies' sampling.
        num_threads: DALI threads; progress: tqdm bars.
        verify, on_bad, max_pixels: file checks of image folders (see
            :func:`~fastpolicy.data.files.check_files`).
    """

    out: str
    preset: str = "fashion_mnist"
    data: str | None = None
    model: str | None = None
    batch: int | None = None
    train_subset: int | None = None
    device: str | None = None
    seed: int = 0
    num_threads: int = 2
    progress: bool = True
    verify: str = "header"
    on_bad: str = "raise"
    max_pixels: int | None = DEFAULT_MAX_PIXELS


@dataclass
class RunConfig(CommonConfig):
    """:class:`CommonConfig` and what an epoch-trained run (the adversarial search, final
    training) adds.

    Attributes:
        epochs, M, val_subset: override the preset.
        balanced_subset: with ``train_subset``, train on a class-balanced subset drawn with
            ``seed`` rather than the first images (Fashion-MNIST).
    """

    epochs: int | None = None
    M: int | None = None
    val_subset: int | None = None
    balanced_subset: bool = False

    def base_preset(self) -> Preset:
        """The preset with this run's overrides."""
        return get_preset(self.preset).with_(
            model=self.model,
            epochs=self.epochs,
            M=self.M,
            batch=self.batch,
            train_subset=self.train_subset,
            val_subset=self.val_subset,
        )


def file_checks(config) -> dict:
    """The loader's file-check options (``verify``, ``on_bad``, ``max_pixels``) of a run config."""
    return {"verify": config.verify, "on_bad": config.on_bad, "max_pixels": config.max_pixels}


def start_run(config, kind: str, preset: Preset, resume: bool, overwrite: bool) -> tuple[torch.device, dict]:
    """The set-up every run shares: join the process group (under ``torchrun``), own the run
    folder (:func:`open_run_folder`), resolve the device. Returns ``(device, loader
    options)``: :func:`loader_options` plus the loader's ``device`` name and file ``checks``."""
    distributed.init_from_env(config.device)
    open_run_folder(config.out, kind, resume, overwrite, dataclasses.asdict(config))
    device = torch_device(config.device)
    return device, loader_options(preset) | {"device": device_name(device), "checks": file_checks(config)}


def run_loaders(config, preset: Preset, options: dict, augment: dict):
    """The train and validation loaders of a run over ``config.data`` (:func:`~.data.build_loaders`
    with the preset's M, size and subsets, this rank's batch and shard)."""
    return build_loaders(
        config.data,
        options["batch"],
        preset.M,
        preset.image_size,
        options["device"],
        config.seed,
        preset.train_subset,
        preset.val_subset,
        config.num_threads,
        shard=options["shard"],
        checks=options["checks"],
        subset_seed=config.seed if config.balanced_subset else None,
        augment=augment,
    )


def loader_options(preset: Preset) -> dict:
    """This process's loader arguments under ``torchrun``: the per-rank batch (the preset's N is
    global) and the shard ``(rank, world_size)``."""
    return {"batch": distributed.per_rank_batch(preset.batch), "shard": (distributed.rank(), distributed.world_size())}


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
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {current.get(k)!r}" for k in changed)
        why = (
            " (the learning-rate schedule spans the run's epochs; start a new run for another length)"
            if "epochs" in changed
            else ""
        )
        raise CheckpointError(f"{path} was written with other settings ({detail}){why}; resume with the same options")


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
                    else f"{f['images']} {'files' if f['kind'] == 'files' else 'array images'} (sha256 {f['sha256']})"
                )

            raise CheckpointError(
                f"{path}: the {part} data differ from the checkpoint's: {describe(old)} then, "
                f"{describe(new)} now; resume with the same --data and --subset"
            )


def open_run_folder(out: str, kind: str, resume: bool, overwrite: bool, settings: dict | None = None) -> None:
    """Every rank checks ``out`` (:func:`.rundir.check`: refused unless new, empty, resumed or
    overwritten); rank 0 prepares it (:func:`.rundir.prepare`); all return once it is ready."""
    rundir.check(out, resume, overwrite)
    distributed.barrier()  # every rank has looked before rank 0 changes anything
    if distributed.is_main():
        rundir.prepare(out, kind, resume, overwrite, settings)
    distributed.barrier()


class EpochTrainer:
    """One training run of ``preset`` on ``loaders``.

    Args:
        config: a dataclass with at least ``out``, ``device``, ``seed``, ``progress``
            (saved with every checkpoint; a resumed run must match it).
        preset: the resolved :class:`~.presets.Preset` (model, batch, M, lr, epochs …).
        loaders: ``(train, val, num_classes, channels)`` from :mod:`.data`, built for
            :attr:`device` (use :func:`fastpolicy.device.torch_device` first) and, under ``torchrun``, for
            this rank (:func:`loader_options`).
        device: torch device the model lives on.
        resume: continue from ``<out>/<checkpoint_name>``.
        checkpoint_name, log_name: file names inside ``config.out``.
        schedule_epochs: the learning-rate schedule's length in epochs (default the preset's
            ``epochs``; longer: this run trains the schedule's first ``epochs`` only).
    """

    def __init__(
        self,
        config,
        preset: Preset,
        loaders,
        device: torch.device,
        resume: bool = False,
        checkpoint_name: str = "checkpoint.pt",
        log_name: str = "metrics",
        schedule_epochs: int | None = None,
    ):
        self.config, self.preset, self.device = config, preset, device
        self.checkpoint_path = os.path.join(config.out, checkpoint_name)
        os.makedirs(config.out, exist_ok=True)
        torch.manual_seed(config.seed)
        self.train_loader, self.val_loader, self.num_classes, self.channels = loaders
        self.model = build_model(preset.model, self.num_classes, self.channels).to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_model = self.model  # what trains: the model, or DDP around it under torchrun
        if distributed.is_distributed():
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.optimizer = loop.make_optimizer(self.model, preset)
        self.scheduler = loop.make_scheduler(
            self.optimizer, preset.with_(epochs=schedule_epochs), len(self.train_loader)
        )
        self.history: list[dict] = []
        self.epoch = 0
        self.skipped = 0
        self._last_images = None  # the last training batch of this process, for the sample grid
        self.log = RunLog(config.out, log_name, enabled=distributed.is_main())
        self._resume = resume
        self.data = {"train": self.train_loader.fingerprint(), "val": self.val_loader.fingerprint()}

    def path(self, name: str) -> str:
        return os.path.join(self.config.out, name)

    def restore_or_start(self) -> None:
        """Load the checkpoint if resuming, else start the log afresh (subclasses call this
        last in ``__init__``, once their own state exists)."""
        if self._resume:
            self.restore(checkpoint.load(self.checkpoint_path))
        else:
            self.log.truncate(0)

    # -- hooks ----------------------------------------------------------------------------

    def start_epoch(self) -> dict:
        """Set the train loader's policies for the coming epoch; returns context for
        :meth:`finish_epoch`. Default: keep the loader's policies."""
        return {}

    def finish_epoch(self, context: dict, train: dict, row: dict) -> None:
        """Act on the epoch's training result (``train`` from :func:`.loop.train_epoch`);
        may add entries to the logged ``row``."""

    def on_step(self, batch, policy_means: torch.Tensor) -> None:
        """Called after every training step with its batch and per-policy mean losses
        (see :func:`.loop.train_epoch`). Default: nothing."""

    def extra_state(self) -> dict:
        """Subclass state saved in every checkpoint."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Inverse of :meth:`extra_state`."""

    # -- one epoch ----------------------------------------------------------------------

    def run_epoch(self) -> dict:
        start = time.time()
        context = self.start_epoch()
        train = loop.train_epoch(
            self.train_model,
            self.train_loader,
            self.optimizer,
            self.scheduler,
            self.preset.M,
            self.device,
            desc=f"epoch {self.epoch}",
            progress=self.config.progress,
            on_step=self.on_step,
        )
        self.skipped += train["skipped"]
        row = {
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "skipped_steps": train["skipped"],
        }
        self.finish_epoch(context, train, row)
        val = loop.evaluate(self.model, self.val_loader, self.device, progress=self.config.progress)
        row |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"], "seconds": time.time() - start}
        if "reward" in row:  # lists go last, so the CSV's scalar columns come first
            row["reward"] = row.pop("reward")
        self.log.log(self.epoch, row)
        self.history.append(row)
        self._last_images = train["last_images"]
        self.epoch += 1
        self.save()
        return row

    def describe(self, row: dict) -> str:
        return f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}  val accuracy {row['val_accuracy']:.4f}"

    def run(self, on_epoch_end=None) -> dict:
        """Train to the preset's last epoch; writes the artefacts; returns the last row.
        ``on_epoch_end(trainer, row)`` is called after each epoch's checkpoint."""
        row = self.history[-1] if self.history else {}
        while self.epoch < self.preset.epochs:
            row = self.run_epoch()
            if distributed.is_main():
                log.info(self.describe(row))
            if on_epoch_end is not None:
                on_epoch_end(self, row)
        self.write_artefacts()
        self.log.close()
        return row

    # -- artefacts and checkpoints -------------------------------------------------------

    def summary(self) -> dict:
        return {
            "config": dataclasses.asdict(self.config),
            "preset": dataclasses.asdict(self.preset),
            "epochs": self.history,
            "skipped_steps": self.skipped,
        }

    def write_artefacts(self) -> None:
        """``samples.png`` (the last training batch) and ``summary.json`` (rank 0 only)."""
        if not distributed.is_main():
            return
        if self._last_images is not None:
            spec = self.train_loader.output_spec
            mean, std = np.array(spec.mean or (0.0,)), np.array(spec.std or (1 / 255,))
            plots.plot_samples(self._last_images, mean, std, self.path("samples.png"), self.preset.M)
        atomic.write_json(self.path("summary.json"), self.summary())

    def save(self) -> None:
        """Rank 0 writes the checkpoint, with every rank's loader position and RNG states."""
        checkpoint.save_distributed(
            self.checkpoint_path,
            {
                "config": dataclasses.asdict(self.config),
                "epoch": self.epoch,
                "history": self.history,
                "skipped": self.skipped,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "data": self.data,
            }
            | self.extra_state(),
            self.train_loader,
        )

    def restore(self, state: dict) -> None:
        check_same_settings(state["config"], dataclasses.asdict(self.config), self.checkpoint_path)
        check_same_data(state.get("data"), self.data, self.checkpoint_path)
        self.epoch, self.history, self.skipped = state["epoch"], state["history"], state["skipped"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.load_extra_state(state)
        checkpoint.restore_distributed(state, self.checkpoint_path, self.train_loader)
        self.log.truncate(self.epoch)
        if distributed.is_main():
            log.info(f"fastpolicy: resumed {self.config.out} after epoch {self.epoch - 1}")


__all__ = [
    "CommonConfig",
    "EpochTrainer",
    "RunConfig",
    "check_same_data",
    "check_same_settings",
    "file_checks",
    "loader_options",
    "open_run_folder",
    "run_loaders",
    "start_run",
]
