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

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import atomic
from ..config import NONNEGATIVE, nonnegative_int, positive_int, setting
from ..log import get as get_logger
from ..policy import Policy
from ..schedule import PolicySchedule
from ..search import controller as ctl
from ..search import null
from . import distributed, plots
from .presets import Preset, get_preset
from .runner import RESUME_IGNORED, Run, refused_runs_leave_nothing
from .trainer import EpochTrainer, RunConfig, log_lr_scaling, run_loaders

log = get_logger(__name__)

MODES = ("baseline", "fixed", "random", "adversarial")


@dataclass
class AdversarialConfig(RunConfig):
    """Everything an adversarial search depends on (saved with every checkpoint):
    :class:`~.trainer.RunConfig`'s fields (``out``, ``preset``, ``data``, overrides, ``device``,
    ``seed`` …) and the controller's and the loader's settings below (each a flag).

    ``controller_window`` (batches; 0: one epoch): each window's M policies are sampled at its
    start, rewarded with their mean per-batch losses over the window, and replaced after one
    REINFORCE step; an epoch's last window may be shorter. ``schedule.json`` always holds one entry
    per epoch (with windows: the epoch's last window's policies, the last the controller sampled
    in it); ``windows.json`` then holds every window's. None (the default): the preset's.
    """

    mode: str = setting(
        "adversarial",
        "the paper's Table 4 arms: baseline (M = 1, no policy), fixed, random or adversarial policies",
        choices=MODES,
    )
    entropy_weight: float = setting(1e-5, "the controller's entropy bonus weight", domain=NONNEGATIVE)
    controller_lr: float = setting(
        3.5e-4,
        "the controller's Adam learning rate (0 freezes it: the same code path and its starting "
        "policies; the studies' control)",
        domain=NONNEGATIVE,
    )
    controller_window: int | None = setting(
        None,
        "batches per controller update (0: one epoch, the paper's)",
        type=nonnegative_int,
        shown="the preset's: the fashion_mnist presets 1, every other preset 0",
    )
    probe: int = setting(
        64,
        "policies sampled to log the controller's KL from its start and its op and bin distributions "
        "after a controller update (controller_updates.json; 0: none; about 5 ms per policy on a CPU core)",
        type=nonnegative_int,
    )
    probe_every: int | None = setting(
        None,
        "updates between two probes (rewards, their normalization and reliability: every update)",
        type=positive_int,
        shown="the preset's: the fashion_mnist presets 8, every other preset 1",
    )
    null_draws: int = setting(
        5,
        "replays of the run's controller updates with each update's rewards shuffled across its M "
        "policies, after the last epoch: how far a controller moves on noise alone (summary.json, "
        "fastpolicy show; 0: none)",
        type=nonnegative_int,
    )

    def resolved_preset(self) -> Preset:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.controller_window is not None and self.controller_window < 0:
            raise ValueError(f"controller_window must be a number of batches ≥ 0, got {self.controller_window}")
        preset = self.base_preset().with_(controller_window=self.controller_window, probe_every=self.probe_every)
        return preset.with_(M=1) if self.mode == "baseline" else preset

    @classmethod
    def upgrade_saved(cls, settings: dict) -> dict:
        """Before ``null_draws`` existed, ``controller_window`` None meant one epoch (now: the
        preset's, 1 batch for fashion_mnist): such a checkpoint resumes with 0, its meaning, so a
        resume without ``--controller-window 0`` is refused as other settings, never silently changed."""
        if "null_draws" not in settings and settings.get("controller_window") is None:
            settings = settings | {"controller_window": 0}
        return settings

    def resolved_config(self) -> AdversarialConfig:
        preset = self.resolved_preset()
        return dataclasses.replace(
            super().resolved_config(), controller_window=preset.controller_window, probe_every=preset.probe_every
        )


class AdversarialSearch(EpochTrainer):
    """One run. ``AdversarialSearch(config).run()``; ``resume=True`` continues from
    ``<out>/checkpoint.pt`` on the same trajectory (same world: same device type and data);
    ``overwrite=True`` replaces a finished or abandoned run in ``out`` (see :mod:`.rundir`)."""

    KIND = "adversarial"
    RESUME_IGNORED = (*RESUME_IGNORED, "probe", "probe_every", "null_draws")
    """What only logs (the probes draw from their own generators) or follows the last epoch."""
    split_halves = True  # each update logs its rewards' split-half reliability

    @refused_runs_leave_nothing
    def __init__(self, config: AdversarialConfig, resume: bool = False, overwrite: bool = False):
        preset = config.resolved_preset()
        run = Run(config, self.KIND, resume=resume, overwrite=overwrite, resume_ignored=self.RESUME_IGNORED)
        log_lr_scaling(get_preset(config.preset), preset)
        loaders = run_loaders(
            run,
            preset,
            {"fill": config.resolved_fill(), "magnitude_scale": config.magnitude_scale, "cutout": preset.cutout},
        )
        super().__init__(run, preset, loaders)
        self.controller = ctl.PolicyController().to(self.device)
        self.controller_start = copy.deepcopy(self.controller)  # for the KL from the start
        self.controller_optimizer = ctl.make_optimizer(self.controller, config.controller_lr)
        self.generator = torch.Generator().manual_seed(config.seed + 7919)
        self.rng = np.random.default_rng([config.seed, 2])
        self.window = preset.controller_window or None  # batches per controller update; None: one epoch
        self.schedule = PolicySchedule()  # one entry per window (per epoch without windows)
        self.epoch_schedule = PolicySchedule()  # one entry per epoch: its last window's policies
        self._window: dict = {"actions": None}
        self._window_updates: list[dict] = []
        self.update_log: list[dict] = []  # one entry per controller update (controller_updates.json)
        self._finished: dict = {}  # what the run's end computed once (its controller null)
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
        version = self.train_loader.set_policies(policies)
        if policies is not None:
            self.schedule.append(policies)
        self._window = self._new_window(actions, version)
        return {"actions": actions, "updates": []}

    def _new_window(self, actions, version: int) -> dict:
        """A controller window: its policies' actions and version, per-policy loss sums (float64
        [M] on the device) and those of the batches' two halves (float64 [2, M], for the rewards'
        split-half reliability), steps taken and batches seen."""
        return {
            "actions": actions,
            "version": version,
            "batches": 0,
            "sum": torch.zeros(self.preset.M, dtype=torch.float64, device=self.device),
            "halves": torch.zeros(2, self.preset.M, dtype=torch.float64, device=self.device),
            "taken": torch.zeros(1, dtype=torch.float64, device=self.device),
        }

    def _update_controller(self, actions, rewards, halves: np.ndarray | None = None) -> dict:
        """One REINFORCE step on rank 0 with global ``rewards``; every rank gets its parameters.
        Logs the update (:attr:`update_log`); ``halves`` (float64 [2, M]): the rewards of the
        window's even and odd batches, for the split-half reliability."""
        update = ctl.update(
            self.controller, self.controller_optimizer, actions.to(self.device), rewards, self.config.entropy_weight
        )
        distributed.broadcast_tensors(self.controller.parameters())
        self._log_update(update, rewards, halves)
        return update

    def _log_update(self, update: dict, rewards, halves: np.ndarray | None) -> None:
        """One :attr:`update_log` entry: epoch, index, raw and normalized rewards [M], the split-half
        correlation of the rewards across the M policies (NaN with fewer than 2 batches), and, with a
        probe, the controller's KL from its start (nats), op [n_ops] and bin [n_bins] distributions.
        The split-half correlation: the M policies' rewards from even rows against those from odd
        rows of the same batches (disjoint halves of each policy's copies)."""
        entry = {
            "epoch": self.epoch,
            "update": len(self.update_log),
            "rewards": [float(r) for r in rewards],
            "normalized_rewards": update["normalized_rewards"],
            "split_half_r": float("nan"),
            "entropy": update["entropy"],
        }
        if halves is not None and np.all(np.isfinite(halves)):
            a, b = halves
            if np.ptp(a) > 0 and np.ptp(b) > 0:
                entry["split_half_r"] = float(np.corrcoef(a, b)[0, 1])
        if self.config.probe and entry["update"] % self.preset.probe_every == 0:
            probe = torch.Generator().manual_seed(self.config.seed * 1000003 + len(self.update_log))
            entry["kl_from_start"], _ = ctl.kl_divergence(
                self.controller, self.controller_start, self.config.probe, probe
            )
            ops, bins = ctl.action_distributions(self.controller, self.config.probe, probe)
            entry["ops"], entry["bins"] = ops.tolist(), bins.tolist()
        self.update_log.append(entry)

    def _window_rewards(self, window: dict) -> tuple[np.ndarray, np.ndarray]:
        """The window's rewards (float64 [M]: mean per-batch loss of each policy) and those of the
        batches' two halves (float64 [2, M]); NaN without a step taken. One synchronization."""
        taken = float(window["taken"].cpu())
        if taken == 0:
            return np.full(self.preset.M, np.nan), np.full((2, self.preset.M), np.nan)
        return (window["sum"] / taken).cpu().numpy(), (window["halves"] / taken).cpu().numpy()

    def on_step(self, batch, policy_means: torch.Tensor, halves: torch.Tensor | None = None) -> None:
        """With a controller window: reward the window's policies after ``controller_window``
        batches, update the controller, and augment from the next batch with new policies."""
        window = self._window
        if window["actions"] is None:
            return
        if batch.version != window["version"]:  # rewards must go to the policies that augmented the batch
            raise RuntimeError(f"batch augmented with policy version {batch.version}, expected {window['version']}")
        taken = torch.isfinite(policy_means[:1])  # NaN: a skipped step (stays on the device)
        window["sum"] = window["sum"] + torch.where(taken, policy_means, 0.0).double()
        if halves is not None:
            window["halves"] = window["halves"] + torch.where(taken, halves, 0.0).double()
        window["taken"] = window["taken"] + taken.double()
        window["batches"] += 1
        if self.window is None:
            return
        if window["batches"] < self.window or batch.step + 1 >= len(self.train_loader):
            return  # the epoch's last window is rewarded by finish_epoch
        rewards, half_rewards = self._window_rewards(window)  # one synchronization per window
        if np.all(np.isfinite(rewards)):
            self._window_updates.append(self._update_controller(window["actions"], rewards.tolist(), half_rewards))
        actions = distributed.broadcast_object(self.controller.sample(self.preset.M, self.generator))
        policies = self.controller.to_policies(actions)
        version = self.train_loader.set_policies(policies)  # takes effect at the very next batch
        self.schedule.append(policies)
        self._window = self._new_window(actions, version)

    def finish_epoch(self, context: dict, train: dict, row: dict) -> None:
        window = self._window
        actions = window["actions"]
        rewards, halves = train["policy_loss"], None
        if actions is not None:
            window_rewards, halves = self._window_rewards(window)
            if self.window is not None:
                rewards = window_rewards.tolist()
        finite = all(np.isfinite(rewards)) and (self.window is None or window["batches"] > 0)
        updates, self._window_updates = self._window_updates, []
        if actions is not None and finite and train["skipped"] < len(self.train_loader):
            # the rewards are global (summed over ranks); rank 0's updated controller is everyone's
            updates.append(self._update_controller(actions, rewards, halves))
        if updates:
            row |= {
                "controller_loss": updates[-1]["loss"],
                "controller_entropy": updates[-1]["entropy"],
                "controller_updates": len(updates),
            }
        elif actions is not None and distributed.is_main():
            log.warning(f"fastpolicy: epoch {self.epoch}: no finite rewards; the controller is not updated")
        if self.config.mode == "adversarial":  # how far the controller has moved, and where its magnitudes are
            probe = torch.Generator().manual_seed(self.config.seed * 100003 + self.epoch)
            kl, kl_error = ctl.kl_divergence(self.controller, self.controller_start, 512, probe)
            bins = ctl.bin_distribution(self.controller, 512, probe)
            row |= {
                "controller_kl_from_start": kl,
                "controller_kl_stderr": kl_error,
                "controller_mean_bin": float(bins @ np.arange(len(bins))),
            }
        row["reward"] = train["policy_loss"]
        if self.config.mode in ("adversarial", "random"):
            self.epoch_schedule.append(self.schedule[-1])  # the epoch's last window's policies

    def describe(self, row: dict) -> str:
        return super().describe(row) + (
            f"  controller entropy {row['controller_entropy']:.2f}" if "controller_entropy" in row else ""
        )

    def run(self, on_epoch_end=None) -> dict:
        """Train to the preset's last epoch; writes the artefacts; returns the last row.
        ``on_epoch_end(search, row)`` is called after each epoch's checkpoint."""
        M, window = self.preset.M, self.window
        what = {
            "baseline": "standard augmentation only, one copy per image",
            "fixed": f"{M} copies per image, standard augmentation only",
            "random": f"{M} random policies per epoch",
            "adversarial": f"{M} policies from the controller per "
            + ("epoch" if window is None else f"{window} batch(es)"),
        }[self.config.mode]
        self.runner.info(
            f"fastpolicy: adversarial search, mode {self.config.mode}: {what}; preset {self.preset.name}, "
            f"{self.preset.epochs} epoch(s), {distributed.world_size()} process(es) → {self.config.out}"
        )
        row = super().run(on_epoch_end)
        found = self._finished.get("null")
        if found is not None:
            self.runner.info(
                f"fastpolicy: the controller moved {max(found['kl'], 0.0):.3g} nats from its start in "
                f"{found['updates']} updates; with shuffled rewards ({len(found['null_kl'])} replays) "
                f"{found['null_p95']:.3g} nats at the 95th percentile: "
                + ("it learned from its rewards" if found["above_null"] else "within what noise alone moves it")
            )
        self.runner.info(f"fastpolicy: wrote {self.config.out}")
        return row

    # -- artefacts and checkpoints -------------------------------------------------------

    def controller_null(self) -> dict | None:
        """How far the controller moved against noise: its KL from its start after the last epoch
        beside :func:`fastpolicy.search.null.controller_null` — the same start replaying this run's
        updates with each update's rewards shuffled across its M policies (``null_draws`` draws,
        512 policies each, nats). ``{"kl", "null_kl", "null_p95", "above_null", "updates"}``; None
        in another mode, without finite updates or with ``null_draws`` 0. Seconds per draw: about
        10 ms per update on a CPU core."""
        rewards = [e["rewards"] for e in self.update_log if np.all(np.isfinite(e["rewards"]))]
        if self.config.mode != "adversarial" or not self.config.null_draws or not rewards or not self.history:
            return None
        kl = self.history[-1].get("controller_kl_from_start", float("nan"))
        self.runner.info(
            f"fastpolicy: replaying the controller's {len(rewards)} updates with shuffled rewards "
            f"({self.config.null_draws} times: the null its KL is compared with; --null-draws 0 skips it) …"
        )
        drawn = null.controller_null(
            self.controller_start,
            rewards,
            self.config.controller_lr,
            self.config.entropy_weight,
            self.config.seed,
            draws=self.config.null_draws,
        )
        return {
            "kl": kl,
            "null_kl": drawn,
            "null_p95": null.percentile(drawn),
            "above_null": null.exceeds_null(kl, drawn),
            "updates": len(rewards),
        }

    def summary(self) -> dict:
        if distributed.is_main() and "null" not in self._finished:
            self._finished["null"] = self.controller_null()  # once: the run's end
        found = self._finished.get("null")
        return super().summary() | ({"controller_null": found} if found is not None else {})

    def write_artefacts(self) -> None:
        if len(self.epoch_schedule) and distributed.is_main():
            self.epoch_schedule.save(self.path("schedule.json"))
            if self.window is not None:
                self.schedule.save(self.path("windows.json"))
            atomic.write_json(self.path("controller_updates.json"), {"updates": self.update_log})
            plots.plot_schedule(self.epoch_schedule, self.path("op_distribution.png"))
        super().write_artefacts()

    def extra_state(self) -> dict:
        return {
            "controller": self.controller.state_dict(),
            "controller_start": self.controller_start.state_dict(),
            "controller_optimizer": self.controller_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
            "schedule": self.schedule.to_dict(),
            "epoch_schedule": self.epoch_schedule.to_dict(),
            "update_log": self.update_log,
        }

    def load_extra_state(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.controller_start.load_state_dict(state["controller_start"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.schedule = _schedule(state["schedule"], self.checkpoint_path)
        # a checkpoint from before epoch_schedule was kept: its schedule was per epoch unless windowed
        if "epoch_schedule" in state:
            self.epoch_schedule = _schedule(state["epoch_schedule"], self.checkpoint_path)
        else:
            self.epoch_schedule = copy.deepcopy(self.schedule) if self.window is None else PolicySchedule()
        self.update_log = list(state.get("update_log", []))


def _schedule(data: dict, source: str) -> PolicySchedule:
    """A checkpoint's schedule; an empty one (a baseline or fixed run) as an empty schedule."""
    return PolicySchedule.from_dict(data, source) if data.get("epochs") else PolicySchedule()
