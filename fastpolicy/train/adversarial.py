"""Adversarial AutoAugment (Zhang et al., ICLR 2020, Algorithm 1): target network and controller, jointly.

Each epoch the controller samples M policies; copy m of every image is augmented by a
random sub-policy of policy m (:class:`~fastpolicy.loader.PolicyDALILoader`); the target
network trains on the M·N batch; each policy's mean loss, averaged over the epoch's
batches, is its reward; rewards are normalized across the M policies and one REINFORCE
step (with an entropy bonus) makes the controller *raise* the target's loss.

Modes (the paper's Table 4), on the same code path:
``baseline`` (M = 1, standard augmentation), ``fixed`` (M copies, standard augmentation
only), ``random`` (M random policies per epoch), ``adversarial``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..policy import Policy
from ..schedule import PolicySchedule
from ..search import controller as ctl
from . import checkpoint, loop, plots
from .data import build_loaders
from .logs import RunLog
from .models import build_model
from .presets import Preset, get_preset

MODES = ("baseline", "fixed", "random", "adversarial")


@dataclass
class AdversarialConfig:
    """Everything a run depends on (saved with every checkpoint).

    Attributes:
        out: output folder (checkpoint, CSV, TensorBoard, schedule, plots).
        preset: a :class:`~.presets.Preset` name (its model, batch, M, lr, epochs …).
        mode: one of :data:`MODES`.
        data: None (Fashion-MNIST) or a folder with ``train/`` and ``val/``.
        model, epochs, M, batch, train_subset, val_subset: override the preset.
        device: ``"cpu"``, ``"gpu"`` or None (GPU if available).
        seed: seeds the model, the loaders, the controller and random policies.
        entropy_weight, controller_lr: the controller's (1e-5, 3.5e-4).
        num_threads: DALI threads; progress: tqdm bars.
    """

    out: str
    preset: str = "fashion_mnist"
    mode: str = "adversarial"
    data: str | None = None
    model: str | None = None
    epochs: int | None = None
    M: int | None = None
    batch: int | None = None
    train_subset: int | None = None
    val_subset: int | None = None
    device: str | None = None
    seed: int = 0
    entropy_weight: float = 1e-5
    controller_lr: float = 3.5e-4
    num_threads: int = 2
    progress: bool = True

    def resolved_preset(self) -> Preset:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        preset = get_preset(self.preset).with_(model=self.model, epochs=self.epochs, M=self.M, batch=self.batch,
                                               train_subset=self.train_subset, val_subset=self.val_subset)
        return preset.with_(M=1) if self.mode == "baseline" else preset


class AdversarialSearch:
    """One run. ``AdversarialSearch(config).run()``; ``resume=True`` continues from
    ``<out>/checkpoint.pt`` on the same trajectory (same world: same device type and data)."""

    CHECKPOINT = "checkpoint.pt"

    def __init__(self, config: AdversarialConfig, resume: bool = False):
        self.config = config
        self.preset = preset = config.resolved_preset()
        os.makedirs(config.out, exist_ok=True)
        self.device = torch.device("cuda" if (config.device or ("gpu" if torch.cuda.is_available() else "cpu"))
                                   == "gpu" else "cpu")
        torch.manual_seed(config.seed)
        self.train_loader, self.val_loader, num_classes, channels = build_loaders(
            config.data, preset.batch, preset.M, preset.image_size, "gpu" if self.device.type == "cuda" else "cpu",
            config.seed, preset.train_subset, preset.val_subset, config.num_threads)
        self.model = build_model(preset.model, num_classes, channels).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = loop.make_optimizer(self.model, preset)
        self.scheduler = loop.make_scheduler(self.optimizer, preset, len(self.train_loader))
        self.controller = ctl.PolicyController().to(self.device)
        self.controller_optimizer = ctl.make_optimizer(self.controller, config.controller_lr)
        self.generator = torch.Generator().manual_seed(config.seed + 7919)
        self.rng = np.random.default_rng([config.seed, 2])
        self.schedule = PolicySchedule()
        self.history: list[dict] = []
        self.epoch = 0
        self.skipped = 0
        self._last_images = None  # the last training batch of this process, for the sample grid
        self.log = RunLog(config.out)
        if resume:
            self._restore(checkpoint.load(self.path(self.CHECKPOINT)))
        else:
            self.log.truncate(0)

    def path(self, name: str) -> str:
        return os.path.join(self.config.out, name)

    # -- one epoch ----------------------------------------------------------------------

    def _policies(self) -> tuple[list[Policy] | None, torch.Tensor | None]:
        mode, M = self.config.mode, self.preset.M
        if mode == "adversarial":
            actions = self.controller.sample(M, self.generator)
            return self.controller.to_policies(actions), actions
        if mode == "random":
            return [Policy.random(self.rng) for _ in range(M)], None
        return None, None

    def run_epoch(self) -> dict:
        start = time.time()
        policies, actions = self._policies()
        self.train_loader.set_policies(policies)
        if policies is not None:
            self.schedule.append(policies)
        train = loop.train_epoch(self.model, self.train_loader, self.optimizer, self.scheduler, self.preset.M,
                                 self.device, desc=f"epoch {self.epoch}", progress=self.config.progress)
        self.skipped += train["skipped"]
        row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], "train_loss": train["loss"],
               "train_accuracy": train["accuracy"], "skipped_steps": train["skipped"]}
        finite = all(np.isfinite(train["policy_loss"]))
        if actions is not None and finite and train["skipped"] < len(self.train_loader):
            update = ctl.update(self.controller, self.controller_optimizer, actions.to(self.device),
                                train["policy_loss"], self.config.entropy_weight)
            row |= {"controller_loss": update["loss"], "controller_entropy": update["entropy"]}
        elif actions is not None:
            print(f"fastpolicy: epoch {self.epoch}: no finite rewards; the controller is not updated")
        val = loop.evaluate(self.model, self.val_loader, self.device, progress=self.config.progress)
        row |= {"val_loss": val["loss"], "val_accuracy": val["accuracy"], "seconds": time.time() - start,
                "reward": train["policy_loss"]}
        self.log.log(self.epoch, row)
        self.history.append(row)
        self._last_images = train["last_images"]
        self.epoch += 1
        self._save()
        return row

    def run(self, on_epoch_end=None) -> dict:
        """Train to the preset's last epoch; writes the artefacts; returns the last row.
        ``on_epoch_end(search, row)`` is called after each epoch's checkpoint."""
        print(f"fastpolicy: adversarial search ({self.config.mode}, preset {self.preset.name}) → {self.config.out}")
        row = self.history[-1] if self.history else {}
        while self.epoch < self.preset.epochs:
            row = self.run_epoch()
            print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}  val accuracy "
                  f"{row['val_accuracy']:.4f}" + (f"  controller entropy {row['controller_entropy']:.2f}"
                                                  if "controller_entropy" in row else ""))
            if on_epoch_end is not None:
                on_epoch_end(self, row)
        self.write_artefacts()
        self.log.close()
        print(f"fastpolicy: wrote {self.config.out}")
        return row

    # -- artefacts and checkpoints -------------------------------------------------------

    def write_artefacts(self) -> None:
        if len(self.schedule):
            self.schedule.save(self.path("schedule.json"))
            plots.plot_schedule(self.schedule, self.path("op_distribution.png"))
        if self._last_images is not None:
            mean = self.train_loader._pixel_mean / 255
            std = 1 / (self.train_loader._pixel_inv_std * 255)
            plots.plot_samples(self._last_images, mean, std, self.path("samples.png"), self.preset.M)
        summary = {"config": dataclasses.asdict(self.config), "preset": dataclasses.asdict(self.preset),
                   "epochs": self.history, "skipped_steps": self.skipped}
        with open(self.path("summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2, default=str)

    def _save(self) -> None:
        checkpoint.save(self.path(self.CHECKPOINT), {
            "config": dataclasses.asdict(self.config), "epoch": self.epoch, "history": self.history,
            "skipped": self.skipped, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "controller": self.controller.state_dict(),
            "controller_optimizer": self.controller_optimizer.state_dict(),
            "generator": self.generator.get_state(), "rng": self.rng.bit_generator.state,
            "schedule": self.schedule.to_dict(), "loader": self.train_loader.state_dict(),
            "rng_state": checkpoint.rng_state()})

    def _restore(self, state: dict) -> None:
        saved = {k: v for k, v in state["config"].items() if k not in ("out", "progress", "epochs")}
        current = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in ("out", "progress", "epochs")}
        if saved != current:
            changed = sorted(k for k in saved if saved[k] != current.get(k))
            raise ValueError(f"{self.path(self.CHECKPOINT)} was written with other settings ({', '.join(changed)}); "
                             "resume with the same options")
        self.epoch, self.history, self.skipped = state["epoch"], state["history"], state["skipped"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.schedule = PolicySchedule.from_dict(state["schedule"], self.path(self.CHECKPOINT))
        self.train_loader.load_state_dict(state["loader"])
        checkpoint.set_rng_state(state["rng_state"])
        self.log.truncate(self.epoch)
        print(f"fastpolicy: resumed {self.config.out} after epoch {self.epoch - 1}")
