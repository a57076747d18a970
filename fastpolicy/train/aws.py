"""AWS: augmentation-wise weight sharing (Tian et al., NeurIPS 2020, Algorithm 1), end to end.

* **Stage 1** trains shared weights with the *uniform* pair distribution on a split of
  the training images (:class:`SharedWeightsTraining`: the common epoch loop, checkpointed
  every epoch) and saves them with the optimizer state (``shared.pt``).
* **Stage 2**, ``loops`` times: reload ``shared.pt``; fine-tune ``finetune_epochs`` at a
  constant small learning rate with the *current* distribution (every training image
  draws one element pair per step); evaluate on the held-out split; reward = top-1
  accuracy (``"last"`` evaluation, or ``"best2"``: the mean of the best two); update the
  distribution with PPO and the EMA baseline (:mod:`fastpolicy.search.aws_agent`); each
  loop logs the distribution's entropy and its KL from uniform (``kl_from_uniform``, nats).
  Each loop ends with a checkpoint (``checkpoint.pt``): a crash resumes at the next loop
  with the same agent, baseline, loader position and RNG states.
* The result θ* is ``policy.json`` (an :class:`~fastpolicy.distribution.AWSDistribution`);
  ``fastpolicy train --policy policy.json`` trains from scratch with it.

The search never touches the test split: its validation images are held out of the
training set by a seeded permutation, saved as ``split.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import atomic, jsonio
from ..config import POSITIVE, UNIT, UNIT_OPEN, positive_float, positive_int, setting
from ..distribution import AWSDistribution, pair_label
from ..log import get as get_logger
from ..search import aws_agent
from . import distributed, loop, plots
from .checkpoint import CheckpointError
from .data import build_search_loaders
from .models import check_width, effective_width
from .presets import AWS_STAGES, AWSStages, Preset, get_preset
from .runner import RESUME_IGNORED, Run, refused_runs_leave_nothing
from .trainer import CommonConfig, EpochTrainer, log_lr_scaling, scaled_lr

log = get_logger(__name__)

REWARDS = ("last", "best2")
FINETUNE_SCHEDULES = ("constant", "tail")
STAGE1_AUGMENTS = ("uniform", "none")
PARAMETERIZATIONS = ("factorized", "joint")


@dataclass
class AWSConfig(CommonConfig):
    """Everything an AWS search depends on (saved with every checkpoint): :class:`~.trainer.CommonConfig`'s
    fields (``train_subset``: train on at most this many of the images not held out) and the
    search's settings below, each a flag. The budget's defaults come from the preset's
    :data:`~.presets.AWS_STAGES`.

    ``finetune_schedule``: ``"constant"`` fine-tunes at the constant ``finetune_lr``; ``"tail"``:
    stage 1 trains the first ``stage1_epochs`` of a ``stage1_epochs + finetune_epochs``-epoch
    schedule (the preset's) and every fine-tuning runs its last ``finetune_epochs``, so a
    candidate is judged where augmentation matters most, at the end of training.
    """

    val_count: int | None = setting(
        None,
        "training images held out for the reward",
        flag="--val",
        type=positive_int,
        metavar="VAL",
        shown="the preset's stages'",
    )
    stage1_epochs: int | None = setting(
        None, "shared-weight epochs (stage 1)", type=positive_int, shown="the preset's stages'"
    )
    loops: int | None = setting(None, "stage-2 loops T_max", type=positive_int, shown="the preset's stages'")
    finetune_epochs: int | None = setting(
        None, "fine-tuning epochs per loop", type=positive_int, shown="the preset's stages'"
    )
    finetune_lr: float | None = setting(
        None, "stage 2's constant learning rate", type=positive_float, shown="the preset's lr × its stages' scale"
    )
    reward: str = setting(
        "last", "the last evaluation, or the mean of the best two (the reference code's)", choices=REWARDS
    )
    finetune_schedule: str = setting(
        "constant",
        "constant: fine-tune at --finetune-lr; tail: stage 1 is the head of one schedule and each fine-tuning its tail",
        choices=FINETUNE_SCHEDULES,
    )
    parameterization: str = setting(
        "factorized",
        "p(e1)·p(e2|e1), the official code's, or one normalized sigmoid over all 36² pairs, the paper's text",
        flag="--aws-parameterization",
        choices=PARAMETERIZATIONS,
    )
    stage1_augment: str = setting(
        "uniform", "stage 1's augmentation: the uniform pair distribution, or none", choices=STAGE1_AUGMENTS
    )
    clip: float = setting(0.2, "PPO's ratio clip", domain=POSITIVE)
    ppo_steps: int = setting(5, "PPO's inner steps per loop", type=positive_int)
    max_kl: float = setting(0.02, "PPO's KL early stop (nats)", domain=POSITIVE)
    baseline_weight: float = setting(0.9, "the reward baseline's EMA weight", domain=UNIT)
    agent_lr: float | None = setting(
        None,
        "the policy's Adam learning rate",
        type=positive_float,
        shown="the preset's stages': 0.1, or 0.2 on ImageNet",
    )
    agent_betas: tuple[float, float] = setting((0.5, 0.999), "the policy's Adam betas", domain=UNIT_OPEN)
    top_k: int = setting(5, "top pairs reported per loop", type=positive_int)
    eval_every: int = setting(
        1,
        "stage 1 evaluates on the held-out images every this many epochs and after its last (the epochs "
        "between log NaN); fine-tunings evaluate after their last epoch (every epoch with --reward best2)",
        type=positive_int,
    )

    def resolved(self) -> tuple[Preset, AWSStages, float]:
        """``(stage-1 preset (M = 1), stages, fine-tuning lr)`` with the overrides applied (a new
        ``batch`` scales the preset's learning rate, and with it the fine-tuning's: :func:`~.trainer.scaled_lr`)."""
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.finetune_schedule not in FINETUNE_SCHEDULES:
            raise ValueError(f"finetune_schedule must be one of {FINETUNE_SCHEDULES}, got {self.finetune_schedule!r}")
        if self.stage1_augment not in STAGE1_AUGMENTS:
            raise ValueError(f"stage1_augment must be one of {STAGE1_AUGMENTS}, got {self.stage1_augment!r}")
        base = scaled_lr(get_preset(self.preset), self.batch)
        if self.preset not in AWS_STAGES:
            raise ValueError(f"preset {self.preset!r} has no AWS budget; known: {', '.join(AWS_STAGES)}")
        stages = dataclasses.replace(
            AWS_STAGES[self.preset],
            **{
                k: v
                for k, v in dict(
                    stage1_epochs=self.stage1_epochs,
                    loops=self.loops,
                    finetune_epochs=self.finetune_epochs,
                    val_count=self.val_count,
                ).items()
                if v is not None
            },
        )
        for name in ("stage1_epochs", "loops", "finetune_epochs", "val_count"):
            if getattr(stages, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(stages, name)}")
        base = base.with_(lr=self.lr, image_size=self.image_size)
        preset = base.with_(
            model=self.model, width=self.width, train_subset=self.train_subset, epochs=stages.stage1_epochs
        ).with_(M=1, val_subset=None)
        check_width(preset.model, preset.width)
        finetune_lr = self.finetune_lr if self.finetune_lr is not None else base.lr * stages.finetune_lr_scale
        if not finetune_lr > 0:
            raise ValueError(f"finetune_lr must be positive, got {finetune_lr}")
        return preset, stages, finetune_lr

    def resolved_config(self) -> AWSConfig:
        """This config with the preset's and its stages' values filled in (what ``config.yaml``
        records; the same run)."""
        preset, stages, finetune_lr = self.resolved()
        return dataclasses.replace(
            self,
            model=preset.model,
            width=effective_width(preset.model, preset.width),
            batch=preset.batch,
            lr=preset.lr,
            image_size=preset.image_size,
            fill=self.resolved_fill(),
            train_subset=preset.train_subset,
            val_count=stages.val_count,
            stage1_epochs=stages.stage1_epochs,
            loops=stages.loops,
            finetune_epochs=stages.finetune_epochs,
            finetune_lr=finetune_lr,
            agent_lr=self.agent_lr if self.agent_lr is not None else stages.agent_lr,
        )


class SharedWeightsTraining(EpochTrainer):
    """Stage 1: the common epoch loop with the uniform pair distribution, or standard
    augmentation only (``stage1_augment``); checkpoint ``stage1.pt``, log ``stage1.csv``."""

    def start_epoch(self) -> dict:
        if self.train_loader.policies is None and self.config.stage1_augment == "uniform":
            self.train_loader.set_policies(AWSDistribution())
        return {}

    def write_artefacts(self) -> None:
        """``samples.png`` only: the search's ``summary.json`` (written at its end) says the run finished."""
        self.write_samples()


class FineTuning(EpochTrainer):
    """Stage 2's fine-tuning of the shared weights with one candidate distribution: the common
    epoch loop on this process alone (every rank fine-tunes its own candidate, no collectives),
    without a checkpoint or a log file of its own (each loop's row and checkpoint hold its
    result). :meth:`start` sets it up for a loop; :attr:`counts` then holds the element pairs
    its training images drew (int64 [E·E])."""

    epoch_log_level = logging.DEBUG

    def __init__(self, run: Run, preset: Preset, loaders, target: tuple):
        super().__init__(
            run, preset, loaders, resume=False, checkpoint_name=None, log_name=None, target=target, sync=False
        )
        self.loop, self.version = 0, -1
        self.distribution: AWSDistribution | None = None
        self.counts = np.zeros(0, dtype=np.int64)

    def start(self, loop_index: int, distribution: AWSDistribution, version: int, scheduler) -> None:
        """A fresh fine-tuning in loop ``loop_index``: the loader's ``distribution`` (policy
        ``version``), the learning-rate ``scheduler`` over the shared optimizer."""
        self.loop, self.distribution, self.version, self.scheduler = loop_index, distribution, version, scheduler
        self.counts = np.zeros(distribution.n_elements**2, dtype=np.int64)
        self.epoch, self.history = 0, []

    def epoch_name(self) -> str:
        return f"loop {self.loop} fine-tune {self.epoch}"

    def evaluates(self, epoch: int) -> bool:
        """Every epoch for the ``"best2"`` reward (it needs them all), else as stage 1 (``eval_every``)."""
        return self.config.reward == "best2" or super().evaluates(epoch)

    def describe(self, row: dict) -> str:
        return f"loop {self.loop} fine-tuning " + super().describe(row)

    def on_batch(self, batch) -> None:
        if batch.version != self.version:
            raise RuntimeError(f"batch augmented with policy version {batch.version}, expected {self.version}")
        assert self.distribution is not None, "FineTuning.start sets the distribution first"
        e = self.distribution.n_elements
        pairs = self.distribution.pairs_of(batch.params)
        self.counts[:] += np.bincount(pairs[:, 0] * e + pairs[:, 1], minlength=self.counts.size)

    def write_artefacts(self) -> None:
        """None: the search writes them."""


class AWSSearch:
    """One AWS search: ``AWSSearch(config).run()``; ``resume=True`` continues the run in
    ``config.out`` (stage 1 from its last epoch, stage 2 from its last loop; stage 1 is skipped
    only then, when its ``shared.pt`` is there); ``overwrite=True`` replaces a run in ``out``."""

    KIND = "aws"
    SHARED, CHECKPOINT, POLICY = "shared.pt", "checkpoint.pt", "policy.json"
    RESUME_IGNORED = (*RESUME_IGNORED, "loops")

    @refused_runs_leave_nothing
    def __init__(self, config: AWSConfig, resume: bool = False, overwrite: bool = False):
        self.config = config
        self.preset, self.stages, self.finetune_lr = config.resolved()
        self.runner = run = Run(
            config, self.KIND, resume=resume, overwrite=overwrite, resume_ignored=self.RESUME_IGNORED
        )
        log_lr_scaling(get_preset(config.preset), self.preset)
        self.device = run.device
        options = run.loader_options(self.preset)
        self._resume = resume
        *loaders, self.split = self._search_loaders(options, shard=options["shard"])
        run.describe_loaders("AWS stage 1", loaders[0], loaders[1])
        self._shared: dict | None = None
        resume_stage1 = resume and not os.path.exists(self.path(self.SHARED))
        if resume and not (os.path.exists(self.path(self.SHARED)) or os.path.exists(self.path("stage1.pt"))):
            raise CheckpointError(f"no checkpoint to resume from in {config.out} (no {self.SHARED} or stage1.pt)")
        tail = config.finetune_schedule == "tail"
        self.stage1 = SharedWeightsTraining(
            run,
            self.preset,
            loaders,
            resume=resume_stage1,
            checkpoint_name="stage1.pt",
            log_name="stage1",
            schedule_epochs=self.stages.stage1_epochs + self.stages.finetune_epochs if tail else None,
        )
        if resume and not resume_stage1:  # stage 1 is done: its log stays, its history is in shared.pt
            self.stage1.history = self.shared_state()["history"]
        else:
            self.stage1.restore_or_start()
        self.model, self.optimizer = self.stage1.model, self.stage1.optimizer
        self.train_loader, self.val_loader = self.stage1.train_loader, self.stage1.val_loader
        self.tail_lr = self.preset.lr  # the schedule's base rate ("tail" fine-tuning)
        if distributed.world_size() > 1:
            # stage 2: every rank fine-tunes its own candidate on the whole split, at the per-rank batch
            # (one GPU's share of N) and the learning rate scaled with it (linear scaling)
            self.train_loader, self.val_loader, *_ = self._search_loaders(
                options, loader_seed=config.seed + 1000 * distributed.rank()
            )
            run.describe_loaders("AWS stage 2", self.train_loader, self.val_loader)
            self.finetune_lr *= options["batch"] / self.preset.batch
            self.tail_lr *= options["batch"] / self.preset.batch
        self.tuning = FineTuning(
            run,
            self.preset.with_(epochs=self.stages.finetune_epochs),
            (self.train_loader, self.val_loader, self.stage1.num_classes, self.stage1.channels),
            (self.model, self.optimizer),
        )
        self.policy = aws_agent.PairPolicy(parameterization=config.parameterization)
        self.agent_lr = config.agent_lr if config.agent_lr is not None else self.stages.agent_lr
        if not self.agent_lr > 0:
            raise ValueError(f"agent_lr must be positive, got {self.agent_lr}")
        self.agent_optimizer = aws_agent.make_optimizer(self.policy, self.agent_lr, config.agent_betas)
        self.baseline = aws_agent.EMABaseline(config.baseline_weight)
        self.loop = 0
        self.history: list[dict] = []
        self.thetas = [self._theta()]  # θ before each loop's update, then after the last
        self.trajectories: list[np.ndarray] = []  # per loop: float [K, E, E], the pair frequencies PPO used
        self.log = run.run_log("metrics")
        if not resume and distributed.is_main():
            jsonio.write_json(self.path("split.json"), self.split)
        if resume and os.path.exists(self.path(self.CHECKPOINT)):
            self._restore(run.load(self.CHECKPOINT, self.stage1.data))
        else:
            self.log.truncate(0)
            if resume and not resume_stage1:  # stopped between shared.pt and the first loop
                self._restore_shared_position()

    def path(self, name: str) -> str:
        return self.runner.path(name)

    def _theta(self) -> np.ndarray:
        return np.concatenate([self.policy.theta1.detach().numpy(), self.policy.theta2.detach().numpy().ravel()])

    # -- stage 1 --------------------------------------------------------------------------

    def run_stage1(self) -> None:
        """Train the shared weights (or find them done) and write ``shared.pt``."""
        distributed.barrier()
        if self._resume and os.path.exists(self.path(self.SHARED)):
            return
        augment = (
            "the uniform pair distribution"
            if self.config.stage1_augment == "uniform"
            else "standard augmentation only (no policy)"
        )
        schedule = (
            f" (the first {self.stages.stage1_epochs} of a {self.stages.stage1_epochs + self.stages.finetune_epochs}"
            "-epoch schedule)"
            if self.config.finetune_schedule == "tail"
            else ""
        )
        self.runner.info(
            f"fastpolicy: AWS stage 1: {self.preset.epochs} epoch(s){schedule} with {augment}, "
            f"{distributed.world_size()} process(es) → {self.config.out}"
        )
        self.stage1.run()
        # with every rank's loader position and RNG states: stage 2 continues the stage-1 loader
        # (one process) and the RNG streams, so a search resumed from shared.pt equals one not stopped
        self.runner.save(
            self.SHARED,
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": self.stage1.history,
            },
            self.stage1.data,
            self.stage1.train_loader,
        )

    def _search_loaders(self, options: dict, **sharding):
        """Loaders over the search split (:func:`~.data.build_search_loaders`): this rank's
        shard (``shard=``) or the whole split with its own seed (``loader_seed=``)."""
        return build_search_loaders(
            self.config.data,
            options["batch"],
            1,
            self.preset.image_size,
            options["device"],
            self.config.seed,
            self.stages.val_count,
            self.preset.train_subset,
            self.config.num_threads,
            checks=options["checks"],
            augment={"cutout": self.preset.cutout, "fill": self.config.resolved_fill()},
            **sharding,
        )

    def shared_state(self) -> dict:
        """The saved shared weights and optimizer state (read once, checked against this config)."""
        if self._shared is None:
            self._shared = self.runner.load(self.SHARED, self.stage1.data)
        return self._shared

    def reload_shared(self) -> None:
        """Model and optimizer back to ``shared.pt``; the base learning rate set to ``finetune_lr``
        (``"constant"``) or to the schedule's (``"tail"``, scaled like ``finetune_lr`` per rank)."""
        state = self.shared_state()
        self.model.load_state_dict(state["model"])
        # a copy: torch's optimizer keeps loaded tensors that already match (momentum buffers),
        # and updating them in place would change the cached shared state for the next loop
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        base = self.finetune_lr if self.config.finetune_schedule == "constant" else self.tail_lr
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = base

    def finetune_scheduler(self):
        """The fine-tuning's learning-rate schedule (see :attr:`AWSConfig.finetune_schedule`)."""
        steps = len(self.train_loader)
        if self.config.finetune_schedule == "constant":
            preset = self.preset.with_(schedule="constant", lr=self.finetune_lr, epochs=self.stages.finetune_epochs)
            return loop.make_scheduler(self.optimizer, preset, steps)
        total = self.stages.stage1_epochs + self.stages.finetune_epochs
        return loop.make_scheduler(
            self.optimizer, self.preset.with_(epochs=total), steps, start_step=self.stages.stage1_epochs * steps
        )

    # -- stage 2 --------------------------------------------------------------------------

    def finetune(self, distribution: AWSDistribution) -> dict:
        """Reload the shared weights, fine-tune with ``distribution``, validate.

        Returns ``{"reward", "accuracies" (one per epoch), "frequencies" (float [E, E], the
        pairs the fine-tuning images drew), "train_loss"}``.
        """
        version = self.train_loader.set_policies(distribution)
        self.reload_shared()
        self.tuning.start(self.loop, distribution, version, self.finetune_scheduler())
        self.tuning.run()
        accuracies = [row["val_accuracy"] for row in self.tuning.history]
        train_loss = self.tuning.history[-1]["train_loss"] if self.tuning.history else float("nan")
        counts = self.tuning.counts
        reward = accuracies[-1] if self.config.reward == "last" else float(np.mean(sorted(accuracies)[-2:]))
        return {
            "reward": reward,
            "accuracies": accuracies,
            "train_loss": train_loss,
            "frequencies": (counts / max(counts.sum(), 1)).reshape(distribution.n_elements, -1),
        }

    def run_loop(self) -> dict:
        """One stage-2 loop: every rank fine-tunes one candidate trajectory; rank 0 makes one PPO
        update from all of them and every rank continues with its parameters."""
        start = time.time()
        distribution = self.policy.distribution()
        result = self.finetune(distribution)
        results = distributed.all_gather_object({k: result[k] for k in ("reward", "frequencies", "train_loss")})
        rewards = np.array([r["reward"] for r in results])
        usable = [i for i, r in enumerate(results) if np.isfinite(r["reward"]) and r["frequencies"].sum() > 0]
        reward = float(np.mean(rewards[usable])) if usable else float("nan")
        row: dict = {
            "loop": self.loop,
            "reward": reward,
            "train_loss": float(np.mean([r["train_loss"] for r in results])),
        }
        if usable:
            self.trajectories.append(np.stack([results[i]["frequencies"] for i in usable]))
            advantages = [self.baseline.advantage(float(rewards[i])) for i in usable]
            update = {}
            if distributed.is_main():
                update = aws_agent.ppo_update(
                    self.policy,
                    self.agent_optimizer,
                    np.stack([results[i]["frequencies"] for i in usable]),
                    advantages,
                    self.config.clip,
                    self.config.ppo_steps,
                    self.config.max_kl,
                )
            distributed.broadcast_tensors(self.policy.parameters())
            update = distributed.broadcast_object(update)
            self.baseline.update(reward)
            row |= {
                "advantage": float(np.mean(advantages)),
                "ppo_steps": update["steps"],
                "kl": update["kl"],
                "clip_fraction": update["clip_fraction"],
            }
        elif distributed.is_main():
            log.warning(f"fastpolicy: loop {self.loop}: no finite reward; the distribution is not updated")
        updated = self.policy.distribution()
        entropy = updated.entropy()
        row |= {
            "baseline": self.baseline.value,
            "entropy": entropy,
            "kl_from_uniform": float(np.log(updated.n_elements**2) - entropy),
            "seconds": time.time() - start,
        }
        for i, (first, second, probability) in enumerate(updated.top_pairs(self.config.top_k), 1):
            row |= {f"top{i}_pair": pair_label(first, second), f"top{i}_prob": probability}
        if len(results) > 1:
            row["rank_rewards"] = rewards.tolist()
        self.log.log(self.loop, row)
        self.history.append(row)
        self.thetas.append(self._theta())
        self.loop += 1
        if distributed.is_main():
            updated.save(self.path(self.POLICY))
        self._save()
        return row

    def run(self, on_loop_end=None) -> AWSDistribution:
        """Stage 1 (unless done), then stage 2 to ``loops``; writes the artefacts; returns θ*.
        ``on_loop_end(search, row)`` is called after each loop's checkpoint."""
        self.run_stage1()
        rate = (
            f"at the constant lr {self.finetune_lr:g}"
            if self.config.finetune_schedule == "constant"
            else f"on the last {self.stages.finetune_epochs} epoch(s) of the schedule (base lr {self.tail_lr:g})"
        )
        done = f", from loop {self.loop}" if self.loop else ""
        self.runner.info(
            f"fastpolicy: AWS stage 2: {self.stages.loops} loops × {self.stages.finetune_epochs} fine-tuning "
            f"epoch(s) {rate}, {distributed.world_size()} candidate(s) per loop, reward: "
            f"{'the last evaluation' if self.config.reward == 'last' else 'the mean of the best two evaluations'}"
            f"{done}"
        )
        while self.loop < self.stages.loops:
            row = self.run_loop()
            if distributed.is_main():
                log.info(
                    f"loop {row['loop']}: reward {row['reward']:.4f}  baseline {row['baseline']:.4f}  "
                    f"entropy {row['entropy']:.3f}  top pair {row['top1_pair']} ({row['top1_prob']:.2e})"
                )
            if on_loop_end is not None:
                on_loop_end(self, row)
        distribution = self.policy.distribution()
        if distributed.is_main():
            self.write_artefacts(distribution)
        self.log.close()
        if distributed.is_main():
            log.info(f"fastpolicy: wrote {self.config.out}; θ* is {self.path(self.POLICY)}")
        return distribution

    # -- artefacts and checkpoints -------------------------------------------------------

    def write_artefacts(self, distribution: AWSDistribution) -> None:
        distribution.save(self.path(self.POLICY))
        thetas = np.stack(self.thetas)
        e = distribution.n_elements
        trajectories = {}
        if self.trajectories and len({t.shape for t in self.trajectories}) == 1:
            # float [T, K, E, E]: what each updating loop fed PPO (a shuffled-reward null replays them)
            trajectories = {"trajectories": np.stack(self.trajectories)}
        atomic.savez(
            self.path("distributions.npz"),
            theta1=thetas[:, :e],
            theta2=thetas[:, e:].reshape(-1, e, e),
            **trajectories,
        )
        plots.plot_pair_heatmap(distribution, self.path("distribution_heatmap.png"))
        plots.plot_top_pairs(distribution, self.path("top_pairs.png"))
        if self.history:
            names = [el.name for el in distribution.space.elements]
            top = [
                (names.index(a), names.index(b), pair_label(a, b))
                for a, b, _ in distribution.top_pairs(self.config.top_k)
            ]
            joints = [
                AWSDistribution(t[:e], t[e:].reshape(e, e), distribution.parameterization).joint()
                for t in self.thetas[1:]
            ]
            plots.plot_search_progress(
                self.history,
                {label: [j[a, b] for j in joints] for a, b, label in top},
                self.path("search_progress.png"),
            )
        self.stage1.write_samples()  # stage 1's last batch
        summary = {
            "config": dataclasses.asdict(self.config),
            "preset": dataclasses.asdict(self.preset),
            "stages": dataclasses.asdict(self.stages),
            "finetune_lr": self.finetune_lr,
            "agent_lr": self.agent_lr,
            "stage1": self.stage1.history,
            "loops": self.history,
            "top_pairs": distribution.top_pairs(20),
            "entropy": distribution.entropy(),
        }
        atomic.write_json(self.path("summary.json"), summary)

    def _save(self) -> None:
        self.runner.save(
            self.CHECKPOINT,
            {
                "loop": self.loop,
                "history": self.history,
                "policy": self.policy.state_dict(),
                "agent_optimizer": self.agent_optimizer.state_dict(),
                "baseline": self.baseline.state_dict(),
                "thetas": self.thetas,
                "trajectories": self.trajectories,
            },
            self.stage1.data,
            self.train_loader,
        )

    def _restore_shared_position(self) -> None:
        """The stage-1 loader's position and the RNG states ``shared.pt`` recorded (last, as
        ``__init__``'s other restores: what the constructor drew is drawn again by then)."""
        state = self.shared_state()
        if "loader" not in state:
            if distributed.is_main():
                log.warning(
                    f"fastpolicy: {self.path(self.SHARED)} records no loader position or RNG states (written by "
                    "an older fastpolicy): stage 2 starts from a fresh loader, so it will differ from an "
                    "uninterrupted search; start a new run for that"
                )
            return
        self.runner.restore_loader(state, self.SHARED, self.stage1.train_loader)
        self.runner.info(f"fastpolicy: resumed {self.config.out} after stage 1")

    def _restore(self, state: dict) -> None:
        self.loop, self.history = state["loop"], state["history"]
        self.thetas = [np.asarray(theta, dtype=np.float64) for theta in state["thetas"]]  # tensors in the file
        self.trajectories = [np.asarray(t, dtype=np.float64) for t in state.get("trajectories", [])]
        self.policy.load_state_dict(state["policy"])
        self.agent_optimizer.load_state_dict(state["agent_optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.runner.restore_loader(state, self.CHECKPOINT, self.train_loader)
        self.log.truncate(self.loop)
        if distributed.is_main():
            log.info(f"fastpolicy: resumed {self.config.out} after loop {self.loop - 1}")


__all__ = ["REWARDS", "AWSConfig", "AWSSearch", "FineTuning", "SharedWeightsTraining"]
