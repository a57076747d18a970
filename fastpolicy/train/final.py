"""Training from scratch with a found policy — the last step of both papers (``fastpolicy train``).

The policy may be a standard policy by name (``autoaugment``, ``autoaugment:cifar10``,
``randaugment``, ``trivialaugment_wide``) or a policy file (:func:`fastpolicy.policies.resolve`):
an AWS distribution θ* (``policy.json`` of ``fastpolicy search aws``),
a single :class:`~fastpolicy.policy.Policy`, or an Adversarial AutoAugment
:class:`~fastpolicy.schedule.PolicySchedule` (``schedule.json``: epoch e replays that epoch's
policies; epochs past its end keep the last). ``M > 1`` trains on the enlarged batch (AWS's
"EB"): every image is copied M times, each copy drawing its own augmentation. Evaluation
uses the dataset's own held-out split (Fashion-MNIST's test images, or ``val/``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import positive_int, setting
from ..log import get as get_logger
from ..policies import resolve
from ..schedule import PolicySchedule
from . import distributed
from .presets import Preset, get_preset
from .runner import Run, refused_runs_leave_nothing
from .trainer import EpochTrainer, RunConfig, log_lr_scaling, run_loaders

log = get_logger(__name__)


@dataclass
class TrainConfig(RunConfig):
    """A final training run (saved with every checkpoint): :class:`~.trainer.RunConfig`'s fields and
    the policy (see the module docstring). ``M`` defaults to 1, or to the schedule's policies per epoch."""

    M: int | None = setting(
        None,
        "enlarged batch: copies per image",
        type=positive_int,
        shown="1, or the schedule's policies per epoch",
    )
    policy: str | None = setting(
        None,
        "a policy file (AWS policy.json, a Policy, an adversarial schedule.json) or a standard policy "
        "(autoaugment, autoaugment:cifar10, randaugment, trivialaugment_wide)",
        shown="standard augmentation only",
    )

    def resolved_policy(self):
        """The sampler or schedule :attr:`policy` names (:func:`fastpolicy.policies.resolve`), or None."""
        return None if self.policy is None else resolve(self.policy)

    def resolved_preset(self, policy=dataclasses.MISSING) -> Preset:
        """The preset with this run's overrides; ``M``: 1, or the schedule's policies per epoch,
        unless given (``policy``: :meth:`resolved_policy`, read again if not passed)."""
        if policy is dataclasses.MISSING:
            policy = self.resolved_policy()
        default_m = len(policy[0]) if isinstance(policy, PolicySchedule) and len(policy) else 1
        if isinstance(policy, PolicySchedule) and self.M is not None:
            try:
                policy.for_copies(0, self.M)
            except ValueError as error:
                raise ValueError(f"{self.policy}: {error}") from None
        return self.base_preset().with_(M=self.M or default_m)


def policy_slots(policy) -> int:
    """Op slots the loader needs for ``policy`` (a sampler, a schedule or None): its longest
    sub-policy over every epoch, at least the default 2 (a 3-op sub-policy is applied, not refused)."""
    if policy is None:
        return 2
    samplers = [p for epoch in policy for p in epoch] if isinstance(policy, PolicySchedule) else [policy]
    return max(2, *(s.n_ops for s in samplers))


class FinalTraining(EpochTrainer):
    """``FinalTraining(config).run()``; ``resume=True`` continues ``<out>/checkpoint.pt``;
    ``overwrite=True`` replaces a run in ``out`` (see :mod:`.rundir`)."""

    KIND = "train"

    @refused_runs_leave_nothing
    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False):
        self.policy = config.resolved_policy()
        preset = config.resolved_preset(self.policy)
        run = Run(config, self.KIND, resume=resume, overwrite=overwrite)
        log_lr_scaling(get_preset(config.preset), preset)
        loaders = run_loaders(
            run,
            preset,
            {
                "fill": config.resolved_fill(),
                "magnitude_scale": config.magnitude_scale,
                "cutout": preset.cutout,
                "slots": policy_slots(self.policy),
            },
        )
        super().__init__(run, preset, loaders)
        self.restore_or_start()

    def start_epoch(self) -> dict:
        if isinstance(self.policy, PolicySchedule):
            self.train_loader.set_policies(self.policy.for_copies(self.epoch, self.preset.M))
        elif self.train_loader.policies is None and self.policy is not None:
            self.train_loader.set_policies(self.policy)
        return {}

    def run(self, on_epoch_end=None) -> dict:
        if self.policy is None:
            what = "standard augmentation only"
        elif isinstance(self.config.policy, str) and not self.config.policy.endswith(".json"):
            what = f"the standard policy {self.config.policy} ({type(self.policy).__name__})"
        else:
            what = f"the {type(self.policy).__name__} in {self.config.policy}"
        self.runner.info(
            f"fastpolicy: training {self.preset.model} from scratch with {what} (M={self.preset.M}, "
            f"{self.preset.epochs} epochs, {distributed.world_size()} process(es)) → {self.config.out}"
        )
        row = super().run(on_epoch_end)
        self.runner.info(
            f"fastpolicy: final held-out accuracy {row['val_accuracy']:.4f} "
            f"(error {100 * (1 - row['val_accuracy']):.2f}%); wrote {self.config.out}"
        )
        return row

    def summary(self) -> dict:
        summary = super().summary()
        if self.history:
            summary |= {
                "final_accuracy": self.history[-1]["val_accuracy"],
                "final_error_percent": 100 * (1 - self.history[-1]["val_accuracy"]),
            }
        return summary


__all__ = ["FinalTraining", "TrainConfig"]
