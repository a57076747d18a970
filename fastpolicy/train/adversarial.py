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
from dataclasses import dataclass

import numpy as np
import torch

from ..policy import Policy
from ..schedule import PolicySchedule
from ..search import controller as ctl
from . import distributed, plots
from .data import build_loaders
from .presets import Preset
from .trainer import (EpochTrainer, RunConfig, file_checks, loader_device, loader_options, open_run_folder,
                      resolve_device)

MODES = ("baseline", "fixed", "random", "adversarial")


@dataclass
class AdversarialConfig(RunConfig):
    """Everything a run depends on (saved with every checkpoint): :class:`~.trainer.RunConfig`'s
    fields (``out``, ``preset``, ``data``, overrides, ``device``, ``seed`` …) and

    Attributes:
        mode: one of :data:`MODES`.
        entropy_weight, controller_lr: the controller's (1e-5, 3.5e-4).
    """

    mode: str = "adversarial"
    entropy_weight: float = 1e-5
    controller_lr: float = 3.5e-4

    def resolved_preset(self) -> Preset:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        preset = self.base_preset()
        return preset.with_(M=1) if self.mode == "baseline" else preset


class AdversarialSearch(EpochTrainer):
    """One run. ``AdversarialSearch(config).run()``; ``resume=True`` continues from
    ``<out>/checkpoint.pt`` on the same trajectory (same world: same device type and data);
    ``overwrite=True`` replaces a finished or abandoned run in ``out`` (see :mod:`.rundir`)."""

    def __init__(self, config: AdversarialConfig, resume: bool = False, overwrite: bool = False):
        preset = config.resolved_preset()
        distributed.init_from_env(config.device)
        open_run_folder(config.out, f"adversarial-{config.mode}", resume, overwrite, dataclasses.asdict(config))
        device = resolve_device(config.device)
        options = loader_options(preset)
        loaders = build_loaders(config.data, options["batch"], preset.M, preset.image_size, loader_device(device),
                                config.seed, preset.train_subset, preset.val_subset, config.num_threads,
                                shard=options["shard"], checks=file_checks(config))
        super().__init__(config, preset, loaders, device, resume)
        self.controller = ctl.PolicyController().to(self.device)
        self.controller_optimizer = ctl.make_optimizer(self.controller, config.controller_lr)
        self.generator = torch.Generator().manual_seed(config.seed + 7919)
        self.rng = np.random.default_rng([config.seed, 2])
        self.schedule = PolicySchedule()
        self.restore_or_start()

    # -- one epoch ----------------------------------------------------------------------

    def start_epoch(self) -> dict:
        mode, M = self.config.mode, self.preset.M
        policies, actions = None, None
        if mode == "adversarial":  # rank 0's controller samples; every rank uses its policies
            actions = distributed.broadcast_object(self.controller.sample(M, self.generator))
            policies = self.controller.to_policies(actions)
        elif mode == "random":
            policies = distributed.broadcast_object([Policy.random(self.rng) for _ in range(M)])
        self.train_loader.set_policies(policies)
        if policies is not None:
            self.schedule.append(policies)
        return {"actions": actions}

    def finish_epoch(self, context: dict, train: dict, row: dict) -> None:
        actions = context["actions"]
        finite = all(np.isfinite(train["policy_loss"]))
        if actions is not None and finite and train["skipped"] < len(self.train_loader):
            # the rewards are global (summed over ranks); rank 0's updated controller is everyone's
            update = ctl.update(self.controller, self.controller_optimizer, actions.to(self.device),
                                train["policy_loss"], self.config.entropy_weight)
            distributed.broadcast_tensors(self.controller.parameters())
            row |= {"controller_loss": update["loss"], "controller_entropy": update["entropy"]}
        elif actions is not None and distributed.is_main():
            print(f"fastpolicy: epoch {self.epoch}: no finite rewards; the controller is not updated")
        row["reward"] = train["policy_loss"]

    def describe(self, row: dict) -> str:
        return super().describe(row) + (f"  controller entropy {row['controller_entropy']:.2f}"
                                        if "controller_entropy" in row else "")

    def run(self, on_epoch_end=None) -> dict:
        """Train to the preset's last epoch; writes the artefacts; returns the last row.
        ``on_epoch_end(search, row)`` is called after each epoch's checkpoint."""
        if distributed.is_main():
            print(f"fastpolicy: adversarial search ({self.config.mode}, preset {self.preset.name}, "
                  f"{distributed.world_size()} process(es)) → {self.config.out}")
        row = super().run(on_epoch_end)
        if distributed.is_main():
            print(f"fastpolicy: wrote {self.config.out}")
        return row

    # -- artefacts and checkpoints -------------------------------------------------------

    def write_artefacts(self) -> None:
        if len(self.schedule) and distributed.is_main():
            self.schedule.save(self.path("schedule.json"))
            plots.plot_schedule(self.schedule, self.path("op_distribution.png"))
        super().write_artefacts()

    def extra_state(self) -> dict:
        return {"controller": self.controller.state_dict(),
                "controller_optimizer": self.controller_optimizer.state_dict(),
                "generator": self.generator.get_state(), "rng": self.rng.bit_generator.state,
                "schedule": self.schedule.to_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.schedule = PolicySchedule.from_dict(state["schedule"], self.checkpoint_path)
