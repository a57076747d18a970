"""The epoch loop every run shares (:class:`EpochTrainer`), and the settings every run has.

:class:`EpochTrainer` trains a model epoch by epoch on a :class:`~fastpolicy.loader.PolicyDALILoader`
(M·N rows per step), evaluates it, logs a row per epoch, and writes an atomic checkpoint
after every epoch from which a resumed run continues on the same trajectory. Its folder,
device, checkpoint files and logs belong to a :class:`~.runner.Run`. Subclasses choose the
policies of each epoch (:meth:`EpochTrainer.start_epoch`) and act on its result
(:meth:`EpochTrainer.finish_epoch`): the Adversarial AutoAugment search, AWS's stage 1 and
its fine-tuning (stage 2), and the final training with a fixed policy.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import atomic
from ..config import (
    device_setting,
    fraction,
    level,
    nonnegative_int,
    positive_float,
    positive_int,
    progress_setting,
    setting,
    threads_setting,
    validate,
)
from ..data.files import DEFAULT_MAX_PIXELS
from ..log import get as get_logger
from ..reference.geometry import FILL
from . import distributed, loop, plots, samples_seen
from .data import build_loaders
from .models import MODELS, build_model, check_width, effective_width
from .presets import PRESETS, Preset, get_preset
from .runner import Run

log = get_logger(__name__)


def scaled_lr(preset: Preset, batch: int | None) -> Preset:
    """``preset`` with ``batch`` (None: its own) and, when that differs from the preset's, the
    learning rate scaled linearly with it (lr × batch / preset batch; Goyal et al., 2017)."""
    if batch is None or batch == preset.batch:
        return preset
    return preset.with_(batch=batch, lr=preset.lr * batch / preset.batch)


def log_lr_scaling(base: Preset, used: Preset) -> None:
    """An info line when :func:`scaled_lr` changed the preset's learning rate (rank 0)."""
    if used.lr != base.lr and distributed.is_main():
        log.info(
            f"fastpolicy: --batch {used.batch} instead of the preset's {base.batch}: learning rate "
            f"{base.lr:g} × {used.batch}/{base.batch} = {used.lr:g} (linear scaling)"
        )


@dataclass
class CommonConfig:
    """Settings every run has, declared once (each run's config adds its own; all saved with
    each checkpoint and, resolved, in ``config.yaml``). Each field is a flag; its metadata
    holds the flag's name, help and choices (:func:`fastpolicy.config.setting`)."""

    out: str = setting(
        help="output folder (checkpoint, CSV, TensorBoard, plots); a folder that holds a run is refused "
        "without --resume or --overwrite",
        shown="a new runs/<kind>-<date>-<time>-<6 hex>",
    )
    preset: str = setting(
        "fashion_mnist",
        "training recipe: model, batch, M, learning rate, epochs …",
        choices=sorted(PRESETS),
        shown="fashion_mnist, or folder (fitted to the images) with --data",
        flag_default=None,
    )
    data: str | None = setting(
        None,
        "a folder of class folders (10 %% of each class held out for validation, seeded), a folder with "
        "ImageNet-layout train/ and val/ (image folders or folders of .tar/.tfrecord shards), "
        "CIFAR-10/100 in its Python format (cifar-10-batches-py/, cifar-100-python/), or webdataset/TFRecord "
        "shards (a pattern such as 'train-{000000..001023}.tar', a glob, a folder of shards)",
        shown="Fashion-MNIST from /usr/share/datasets/fashion-mnist",
    )
    model: str | None = setting(None, "override the preset's model", choices=sorted(MODELS), shown="the preset's")
    width: int | None = setting(
        None,
        "the small CNN's width: channels of its first convolution (its blocks have width, 2·width, 4·width); "
        "other models are fixed networks",
        type=positive_int,
        shown="the preset's, else 32",
    )
    batch: int | None = setting(
        None,
        "N, distinct images per step over all processes; the preset's learning rate scales with it "
        "(lr × batch / preset batch)",
        type=positive_int,
        shown="the preset's (with --data and no --preset: fitted to the images)",
    )
    lr: float | None = setting(
        None,
        "the learning rate for the global batch (as given: not scaled with --batch)",
        type=positive_float,
        shown="the preset's, scaled with --batch",
    )
    image_size: int | None = setting(
        None,
        "the side of the square crops of image files and shards, in px (arrays keep their size)",
        type=positive_int,
        shown="the preset's (with --data and no --preset: fitted to the images)",
    )
    train_subset: int | None = setting(
        None,
        "train on at most this many images (Fashion-MNIST, CIFAR)",
        flag="--subset",
        aliases=("--train-subset",),
        type=positive_int,
        metavar="SUBSET",
        shown="the preset's",
    )
    device: str | None = device_setting()
    seed: int = setting(0, "seeds the model, the loaders and the policies' sampling", type=nonnegative_int)
    num_threads: int = threads_setting()
    progress: bool = progress_setting()
    verify: str = setting(
        "header",
        "image checks before training (--data folders): header (signature, truncation, dimensions), "
        "decode (full decode) or none",
        choices=("header", "decode", "none"),
    )
    on_bad: str = setting(
        "raise",
        "a bad image file stops the run naming it (raise) or is dropped and counted (skip)",
        choices=("raise", "skip"),
    )
    max_pixels: int | None = setting(
        DEFAULT_MAX_PIXELS, "refuse images with more pixels (PIL's MAX_IMAGE_PIXELS)", type=positive_int
    )

    fill: int | None = setting(
        None,
        "0..255 level geometric ops fill with",
        type=level,
        shown="0 for Fashion-MNIST, whose background is black; 128, AutoAugment's grey, for other data",
    )

    def resolved_fill(self) -> int:
        """:attr:`fill`, or the data's default: 0 for Fashion-MNIST (``data`` None: its background is
        black, so a grey fill would draw wedges no image has), 128 (AutoAugment's grey) otherwise."""
        if self.fill is not None:
            return self.fill
        return 0 if self.data is None else FILL

    def __post_init__(self) -> None:
        validate(self)  # every field against its declaration: domains, choices, paths


@dataclass
class RunConfig(CommonConfig):
    """:class:`CommonConfig` and what an epoch-trained run (the adversarial search, final
    training) adds."""

    epochs: int | None = setting(None, "epochs to train", type=positive_int, shown="the preset's")
    M: int | None = setting(None, "copies (policies) per image", type=positive_int, shown="the preset's")
    val_data: str | None = setting(
        None,
        "held-out data instead of --data's val/ (needed with --data shards): an image folder or shards "
        "(e.g. 'val-{000000..000049}.tar')",
        shown="--data's val/",
    )
    val_subset: int | None = setting(
        None,
        "evaluate on at most this many held-out images (Fashion-MNIST, CIFAR)",
        type=positive_int,
        shown="the preset's",
    )
    balanced_subset: bool = setting(
        False, "with --subset, train on a class-balanced subset drawn with --seed rather than the first images"
    )
    magnitude_scale: float = setting(
        1.0,
        "narrow every op's magnitude range towards its identity by this factor in (0, 1] "
        "(1: the full AutoAugment range)",
        type=fraction,
    )

    eval_every: int = setting(
        1,
        "evaluate on the held-out images every this many epochs and after the last "
        "(the epochs between log val_loss/val_accuracy as NaN)",
        type=positive_int,
    )

    @classmethod
    def upgrade_saved(cls, settings: dict) -> dict:
        """A config saved by an earlier version (a checkpoint's ``config``) in this version's
        terms: where a setting's meaning changed, the value that means what it meant then."""
        return settings

    def base_preset(self) -> Preset:
        """The preset with this run's overrides (a new ``batch`` scales the learning rate: :func:`scaled_lr`)."""
        preset = scaled_lr(get_preset(self.preset), self.batch).with_(
            model=self.model,
            width=self.width,
            lr=self.lr,
            image_size=self.image_size,
            epochs=self.epochs,
            M=self.M,
            train_subset=self.train_subset,
            val_subset=self.val_subset,
        )
        check_width(preset.model, preset.width)
        return preset

    def resolved_preset(self) -> Preset:
        """The preset this run trains with (:meth:`base_preset`; a run kind may change it)."""
        return self.base_preset()

    def resolved_config(self):
        """This config with the preset's values filled in (what ``config.yaml`` records; the same run)."""
        preset = self.resolved_preset()
        return dataclasses.replace(
            self,
            model=preset.model,
            width=effective_width(preset.model, preset.width),
            batch=preset.batch,
            lr=preset.lr,
            image_size=preset.image_size,
            fill=self.resolved_fill(),
            epochs=preset.epochs,
            M=preset.M,
            train_subset=preset.train_subset,
            val_subset=preset.val_subset,
        )


def run_loaders(run: Run, preset: Preset, augment: dict):
    """The train and validation loaders of a run over ``config.data`` (:func:`~.data.build_loaders`
    with the preset's M, size and subsets, this rank's batch and shard)."""
    config, options = run.config, run.loader_options(preset)
    if (config.train_subset is not None or config.val_subset is not None) and config.data is not None:
        from .data import array_dataset

        if array_dataset(config.data) is None:  # a preset's subsets are ignored with a warning; the user's refused
            raise ValueError(
                f"--subset/--val-subset apply to Fashion-MNIST and CIFAR; {config.data} is a folder or shards: "
                "pass a smaller folder or fewer shards"
            )
    loaders = build_loaders(
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
        val_data=config.val_data,
    )
    run.describe_loaders(run.kind, loaders[0], loaders[1])
    return loaders


class EpochTrainer:
    """The epoch loop: train on ``loaders`` epoch by epoch, evaluate, log a row, checkpoint.

    Args:
        run: the :class:`~.runner.Run` (folder, device, checkpoints, logs) this trains in.
        preset: the resolved :class:`~.presets.Preset` (model, batch, M, lr, epochs …).
        loaders: ``(train, val, num_classes, channels)`` from :mod:`.data`, built for the run's
            device and, under ``torchrun``, this rank (:meth:`.runner.Run.loader_options`).
        resume: continue from ``<out>/<checkpoint_name>`` (default: whether the run resumes).
        checkpoint_name: file name of the checkpoint written after every epoch (None: none).
        log_name: the CSV log's name, ``<out>/<log_name>.csv`` (None: no log file).
        schedule_epochs: the learning-rate schedule's length in epochs (default the preset's
            ``epochs``; longer: this run trains the schedule's first ``epochs`` only).
        target: ``(model, optimizer)`` to go on training (AWS's fine-tuning of the shared
            weights) instead of a new model; its scheduler is then set by the caller.
        sync: under ``torchrun``, train one model over every rank's shard (DDP); False: this
            process trains alone, no collectives (AWS's stage 2: one candidate per rank).
    """

    epoch_log_level = logging.INFO
    """The level of the line logged after every epoch."""

    def __init__(
        self,
        run: Run,
        preset: Preset,
        loaders,
        *,
        resume: bool | None = None,
        checkpoint_name: str | None = "checkpoint.pt",
        log_name: str | None = "metrics",
        schedule_epochs: int | None = None,
        target: tuple | None = None,
        sync: bool = True,
    ):
        self.runner, self.config, self.preset, self.device = run, run.config, preset, run.device
        self.checkpoint_name, self.sync = checkpoint_name, sync
        self.train_loader, self.val_loader, self.num_classes, self.channels = loaders
        if target is None:
            torch.manual_seed(self.config.seed)
            self.model = build_model(preset.model, self.num_classes, self.channels, preset.width).to(self.device)
            # channels-last weights on every device: cuDNN's fast path, and 1.7× faster convolutions
            # with oneDNN on a CPU (the small CNN at 28², measured); the batches may stay NCHW
            self.model = self.model.to(memory_format=torch.channels_last)
            self.optimizer = loop.make_optimizer(self.model, preset)
            self.scheduler = loop.make_scheduler(
                self.optimizer, preset.with_(epochs=schedule_epochs), len(self.train_loader)
            )
        else:
            self.model, self.optimizer = target
        self.train_model = self.model  # what trains: the model, or DDP around it under torchrun
        if sync and distributed.is_distributed():
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.history: list[dict] = []
        self.epoch = 0
        self.skipped = 0
        self._last_images = None  # the last training batch of this process, for the sample grid
        self._last_params, self._last_epoch = None, 0  # what augmented it, and its epoch
        self.log = None if log_name is None else run.run_log(log_name)
        self._resume = run.resume if resume is None else resume
        self._data: dict | None = None

    @property
    def data(self) -> dict:
        """The loaders' data fingerprints ``{"train": …, "val": …}`` (checked on resume)."""
        if self._data is None:
            self._data = {"train": self.train_loader.fingerprint(), "val": self.val_loader.fingerprint()}
        return self._data

    def path(self, name: str) -> str:
        return self.runner.path(name)

    @property
    def checkpoint_path(self) -> str:
        return self.path(self.checkpoint_name or "")

    def restore_or_start(self) -> None:
        """Load the checkpoint if resuming, else start the log afresh (subclasses call this
        last in ``__init__``, once their own state exists)."""
        if self._resume and self.checkpoint_name is not None:
            self.restore(self.runner.load(self.checkpoint_name, self.data))
        elif self.log is not None:
            self.log.truncate(0)

    # -- hooks ----------------------------------------------------------------------------

    def start_epoch(self) -> dict:
        """Set the train loader's policies for the coming epoch; returns context for
        :meth:`finish_epoch`. Default: keep the loader's policies."""
        return {}

    def finish_epoch(self, context: dict, train: dict, row: dict) -> None:
        """Act on the epoch's training result (``train`` from :func:`.loop.train_epoch`);
        may add entries to the logged ``row``. Called before the evaluation."""

    def on_batch(self, batch) -> None:
        """Called with every batch the loader yields, before its step (see :func:`.loop.train_epoch`).
        Default: nothing."""

    def _on_batch(self, batch) -> None:
        samples_seen.record(self.epoch, batch)  # FASTPOLICY_SAMPLES_SEEN's debug record, if set
        self.on_batch(batch)

    split_halves = False
    """Whether :meth:`on_step` also gets the per-policy losses of each batch's two halves."""

    def on_step(self, batch, policy_means: torch.Tensor, halves: torch.Tensor | None = None) -> None:
        """Called after every training step with its batch and per-policy mean losses, and with
        :attr:`split_halves` those of its halves (see :func:`.loop.train_epoch`). Default: nothing."""

    def extra_state(self) -> dict:
        """Subclass state saved in every checkpoint."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Inverse of :meth:`extra_state`."""

    def epoch_name(self) -> str:
        """How the coming epoch is named in warnings and progress bars."""
        return f"epoch {self.epoch}"

    # -- one epoch ----------------------------------------------------------------------

    def run_epoch(self) -> dict:
        """Train one epoch (:func:`.loop.train_epoch`), act on it (:meth:`finish_epoch`), evaluate
        (:func:`.loop.evaluate`), log its row and write the checkpoint; returns the row."""
        start = time.time()
        context = self.start_epoch()
        train = loop.train_epoch(
            self.train_model,
            self.train_loader,
            self.optimizer,
            self.scheduler,
            self.preset.M,
            self.device,
            desc=self.epoch_name(),
            progress=self.config.progress,
            on_batch=self._on_batch,
            sync=self.sync,
            on_step=self.on_step,
            split_halves=self.split_halves,
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
        if self.evaluates(self.epoch):
            val = loop.evaluate(self.model, self.val_loader, self.device, progress=self.config.progress, sync=self.sync)
        else:
            val = {"loss": float("nan"), "accuracy": float("nan")}
        row |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"], "seconds": time.time() - start}
        if "reward" in row:  # lists go last, so the CSV's scalar columns come first
            row["reward"] = row.pop("reward")
        if self.log is not None:
            self.log.log(self.epoch, row)
        self.history.append(row)
        self._last_images, self._last_params = train["last_images"], train["last_params"]
        self._last_epoch = self.epoch
        self.epoch += 1
        if self.checkpoint_name is not None:
            self.save()
        return row

    def evaluates(self, epoch: int) -> bool:
        """Whether ``epoch`` ends with an evaluation: every ``eval_every``-th epoch and the last."""
        every = getattr(self.config, "eval_every", 1)
        return (epoch + 1) % every == 0 or epoch + 1 >= self.preset.epochs

    def describe(self, row: dict) -> str:
        return f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}  val accuracy {row['val_accuracy']:.4f}"

    def run(self, on_epoch_end=None) -> dict:
        """Train to the preset's last epoch; writes the artefacts; returns the last row.
        ``on_epoch_end(trainer, row)`` is called after each epoch's checkpoint."""
        row = self.history[-1] if self.history else {}
        while self.epoch < self.preset.epochs:
            row = self.run_epoch()
            if distributed.is_main():
                log.log(self.epoch_log_level, self.describe(row))
            if on_epoch_end is not None:
                on_epoch_end(self, row)
        self.write_artefacts()
        if self.log is not None:
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
        """``samples.png`` (the last training batch) and ``summary.json`` (rank 0 only); a run's
        ``summary.json`` says it finished (``fastpolicy show``), so it is written last."""
        if not distributed.is_main():
            return
        self.write_samples()
        atomic.write_json(self.path("summary.json"), self.summary())

    def write_samples(self) -> None:
        """``samples.png``: the last training batch this process trained on, if any (rank 0 only)."""
        if distributed.is_main() and self._last_images is not None:
            spec = self.train_loader.output_spec
            mean, std = np.array(spec.mean or (0.0,)), np.array(spec.std or (1 / 255,))
            plots.plot_samples(
                self._last_images,
                mean,
                std,
                self.path("samples.png"),
                self.preset.M,
                epoch=self._last_epoch,
                params=self._last_params,
            )

    def save(self) -> None:
        """The checkpoint (:meth:`.runner.Run.save`), with every rank's loader position and RNG states."""
        assert self.checkpoint_name is not None
        self.runner.save(
            self.checkpoint_name,
            {
                "epoch": self.epoch,
                "history": self.history,
                "skipped": self.skipped,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
            | self.extra_state(),
            self.data,
            self.train_loader,
        )

    def restore(self, state: dict) -> None:
        """Continue from a checkpoint already checked by :meth:`.runner.Run.load`."""
        assert self.checkpoint_name is not None
        self.epoch, self.history, self.skipped = state["epoch"], state["history"], state["skipped"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.load_extra_state(state)
        self.runner.restore_loader(state, self.checkpoint_name, self.train_loader)
        if self.log is not None:
            self.log.truncate(self.epoch)
        self.runner.info(f"fastpolicy: resumed {self.config.out} after epoch {self.epoch - 1}")


__all__ = ["CommonConfig", "EpochTrainer", "RunConfig", "log_lr_scaling", "run_loaders", "scaled_lr"]
