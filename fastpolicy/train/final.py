"""Training from scratch with a found policy — the last step of both papers (``fastpolicy train``).

The policy file may be an AWS distribution θ* (``policy.json`` of ``fastpolicy search aws``),
a single :class:`~fastpolicy.policy.Policy`, or an Adversarial AutoAugment
:class:`~fastpolicy.schedule.PolicySchedule` (``schedule.json``: epoch e replays that epoch's
policies; epochs past its end keep the last). ``M > 1`` trains on the enlarged batch (AWS's
"EB"): every image is copied M times, each copy drawing its own augmentation. Evaluation
uses the dataset's own held-out split (Fashion-MNIST's test images, or ``val/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import jsonio
from ..distribution import FORMAT as AWS_FORMAT
from ..distribution import AWSDistribution
from ..log import get as get_logger
from ..policy import FORMAT as POLICY_FORMAT
from ..policy import Policy
from ..schedule import FORMAT as SCHEDULE_FORMAT
from ..schedule import PolicySchedule
from . import distributed
from .trainer import EpochTrainer, RunConfig, run_loaders, start_run

log = get_logger(__name__)

POLICY_FILES = {AWS_FORMAT: AWSDistribution, POLICY_FORMAT: Policy, SCHEDULE_FORMAT: PolicySchedule}
"""JSON ``format`` → the class a policy file loads as."""


def load_policy_file(path: str):
    """An :class:`AWSDistribution`, :class:`Policy` or :class:`PolicySchedule` from ``path``
    (chosen by its ``format`` field); PolicyFormatError names the file otherwise."""
    data = jsonio.read_json(path)
    fmt = data.get("format")
    kind: Any = POLICY_FILES.get(fmt) if isinstance(fmt, str) else None
    if kind is None:
        raise jsonio.PolicyFormatError(
            f"{path}: 'format' is {fmt!r}; a policy file is one of {', '.join(POLICY_FILES)}"
        )
    return jsonio.checked_from_dict(kind.from_dict, data, str(path))


@dataclass
class TrainConfig(RunConfig):
    """A final training run (saved with every checkpoint): :class:`~.trainer.RunConfig`'s fields and

    Attributes:
        policy: a policy file (see the module docstring), or None (standard augmentation only).

    ``M`` defaults to 1, or to the schedule's policies per epoch.
    """

    policy: str | None = None


class FinalTraining(EpochTrainer):
    """``FinalTraining(config).run()``; ``resume=True`` continues ``<out>/checkpoint.pt``;
    ``overwrite=True`` replaces a run in ``out`` (see :mod:`.rundir`)."""

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False):
        self.policy = None if config.policy is None else load_policy_file(config.policy)
        default_m = len(self.policy[0]) if isinstance(self.policy, PolicySchedule) and len(self.policy) else 1
        preset = config.base_preset().with_(M=config.M or default_m)
        device, options = start_run(config, "train", preset, resume, overwrite)
        loaders = run_loaders(config, preset, options, {"cutout": preset.cutout})
        super().__init__(config, preset, loaders, device, resume)
        self.restore_or_start()

    def start_epoch(self) -> dict:
        if isinstance(self.policy, PolicySchedule):
            policies = self.policy[min(self.epoch, len(self.policy) - 1)]
            self.train_loader.set_policies([policies[m % len(policies)] for m in range(self.preset.M)])
        elif self.train_loader.policies is None and self.policy is not None:
            self.train_loader.set_policies(self.policy)
        return {}

    def run(self, on_epoch_end=None) -> dict:
        kind = "standard augmentation" if self.policy is None else type(self.policy).__name__
        if distributed.is_main():
            log.info(
                f"fastpolicy: training {self.preset.model} from scratch with {kind} (M={self.preset.M}, "
                f"{self.preset.epochs} epochs, {distributed.world_size()} process(es)) → {self.config.out}"
            )
        row = super().run(on_epoch_end)
        if distributed.is_main():
            log.info(
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


__all__ = ["POLICY_FILES", "FinalTraining", "TrainConfig", "load_policy_file"]
