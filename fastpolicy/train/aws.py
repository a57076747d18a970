"""AWS: augmentation-wise weight sharing (Tian et al., NeurIPS 2020, Algorithm 1), end to end.

* **Stage 1** trains shared weights with the *uniform* pair distribution on a split of
  the training images (:class:`SharedWeightsTraining`: the common epoch loop, checkpointed
  every epoch) and saves them with the optimizer state (``shared.pt``).
* **Stage 2**, ``loops`` times: reload ``shared.pt``; fine-tune ``finetune_epochs`` at a
  constant small learning rate with the *current* distribution (every training image
  draws one element pair per step); evaluate on the held-out split; reward = top-1
  accuracy (``"last"`` evaluation, or ``"best2"``: the mean of the best two); update the
  distribution with PPO and the EMA baseline (:mod:`fastpolicy.search.aws_agent`).
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
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import atomic, jsonio
from ..distribution import AWSDistribution
from ..log import get as get_logger
from ..search import aws_agent
from . import checkpoint, distributed, loop, plots
from .checkpoint import CheckpointError
from .data import build_search_loaders
from .logs import RunLog
from .presets import AWS_STAGES, AWSStages, Preset, get_preset
from .trainer import RESUME_IGNORED, CommonConfig, EpochTrainer, check_same_data, check_same_settings, start_run

log = get_logger(__name__)

REWARDS = ("last", "best2")
FINETUNE_SCHEDULES = ("constant", "tail")
STAGE1_AUGMENTS = ("uniform", "none")


@dataclass
class AWSConfig(CommonConfig):
    """Everything an AWS search depends on (saved with every checkpoint).

    Attributes:
        out: output folder.
        preset: a :class:`~.presets.Preset` name with :data:`~.presets.AWS_STAGES` defaults.
        data: None (Fashion-MNIST's train split) or a folder whose ``train/`` is split.
        model, batch, train_subset: override the preset (``train_subset``: train on at
            most this many of the images not held out).
        val_count: images held out for the reward (default from the preset's stages).
        stage1_epochs, loops, finetune_epochs: the budget (defaults from the stages).
        finetune_lr: stage 2's constant learning rate (default lr × finetune_lr_scale).
        reward: ``"last"`` or ``"best2"`` (mean of the two best per-epoch evaluations).
        finetune_schedule: ``"constant"`` (fine-tune at the constant ``finetune_lr``) or
            ``"tail"``: stage 1 trains the first ``stage1_epochs`` of a
            ``stage1_epochs + finetune_epochs``-epoch schedule (the preset's) and every
            fine-tuning runs its last ``finetune_epochs``, so a candidate is judged where
            augmentation matters most, at the end of training.
        parameterization: ``"factorized"`` p1(e1)·p2(e2|e1) (the official code's, default) or
            ``"joint"`` (one normalized sigmoid over all pairs, the paper's text).
        stage1_augment: ``"uniform"`` (AWS: the uniform pair distribution) or ``"none"``
            (standard augmentation only; the paper's Table 5 ablation).
        clip, ppo_steps, max_kl: PPO's ratio clip, inner steps, KL early stop (nats).
        baseline_weight, agent_lr, agent_betas: EMA weight 0.9; Adam with betas (0.5, 0.999) and
            the stages' learning rate (0.1 on CIFAR and Fashion-MNIST, 0.2 on ImageNet) unless
            ``agent_lr`` is given.
        out, preset, data, model, batch, train_subset, device, seed, num_threads, progress, verify,
        on_bad, max_pixels: :class:`~.trainer.CommonConfig`'s.
    """

    val_count: int | None = None
    stage1_epochs: int | None = None
    loops: int | None = None
    finetune_epochs: int | None = None
    finetune_lr: float | None = None
    reward: str = "last"
    finetune_schedule: str = dataclasses.field(
        default="constant",
        metadata={
            "choices": FINETUNE_SCHEDULES,
            "help": "constant: fine-tune at finetune_lr; tail: stage 1 is the head of "
            "one schedule and each fine-tuning its tail",
        },
    )
    parameterization: str = "factorized"
    stage1_augment: str = dataclasses.field(
        default="uniform",
        metadata={"choices": STAGE1_AUGMENTS, "help": "stage 1's augmentation: the uniform pair distribution, or none"},
    )
    clip: float = dataclasses.field(default=0.2, metadata={"help": "PPO's ratio clip"})
    ppo_steps: int = dataclasses.field(default=5, metadata={"help": "PPO's inner steps per loop"})
    max_kl: float = dataclasses.field(default=0.02, metadata={"help": "PPO's KL early stop (nats)"})
    baseline_weight: float = dataclasses.field(default=0.9, metadata={"help": "the reward baseline's EMA weight"})
    agent_lr: float | None = None
    agent_betas: tuple[float, float] = dataclasses.field(default=(0.5, 0.999), metadata={"help": "Adam's betas"})
    top_k: int = dataclasses.field(default=5, metadata={"help": "top pairs reported per loop"})

    def resolved(self) -> tuple[Preset, AWSStages, float]:
        """``(stage-1 preset (M = 1), stages, fine-tuning lr)`` with the overrides applied."""
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.finetune_schedule not in FINETUNE_SCHEDULES:
            raise ValueError(f"finetune_schedule must be one of {FINETUNE_SCHEDULES}, got {self.finetune_schedule!r}")
        if self.stage1_augment not in STAGE1_AUGMENTS:
            raise ValueError(f"stage1_augment must be one of {STAGE1_AUGMENTS}, got {self.stage1_augment!r}")
        base = get_preset(self.preset)
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
        preset = base.with_(
            model=self.model, batch=self.batch, train_subset=self.train_subset, epochs=stages.stage1_epochs
        ).with_(M=1, val_subset=None)
        finetune_lr = self.finetune_lr if self.finetune_lr is not None else base.lr * stages.finetune_lr_scale
        if not finetune_lr > 0:
            raise ValueError(f"finetune_lr must be positive, got {finetune_lr}")
        return preset, stages, finetune_lr


class SharedWeightsTraining(EpochTrainer):
    """Stage 1: the common epoch loop with the uniform pair distribution (``stage1.pt``,
    ``stage1.csv``). A longer ``loops`` may be asked for on resume."""

    def start_epoch(self) -> dict:
        if self.train_loader.policies is None and self.config.stage1_augment == "uniform":
            self.train_loader.set_policies(AWSDistribution())
        return {}

    def restore(self, state: dict) -> None:
        check_same_settings(
            state["config"], dataclasses.asdict(self.config), self.checkpoint_path, ignored=AWSSearch.RESUME_IGNORED
        )
        state = state | {"config": dataclasses.asdict(self.config)}
        super().restore(state)


class AWSSearch:
    """One AWS search: ``AWSSearch(config).run()``; ``resume=True`` continues the run in
    ``config.out`` (stage 1 from its last epoch, stage 2 from its last loop; stage 1 is skipped
    only then, when its ``shared.pt`` is there); ``overwrite=True`` replaces a run in ``out``."""

    SHARED, CHECKPOINT, POLICY = "shared.pt", "checkpoint.pt", "policy.json"
    RESUME_IGNORED = (*RESUME_IGNORED, "loops")

    def __init__(self, config: AWSConfig, resume: bool = False, overwrite: bool = False):
        self.config = config
        self.preset, self.stages, self.finetune_lr = config.resolved()
        self.device, options = start_run(config, "aws", self.preset, resume, overwrite)
        self._resume = resume
        *loaders, self.split = self._search_loaders(options, shard=options["shard"])
        self._shared: dict | None = None
        resume_stage1 = resume and not os.path.exists(self.path(self.SHARED))
        if resume and not (os.path.exists(self.path(self.SHARED)) or os.path.exists(self.path("stage1.pt"))):
            raise CheckpointError(f"no checkpoint to resume from in {config.out} (no {self.SHARED} or stage1.pt)")
        tail = config.finetune_schedule == "tail"
        self.stage1 = SharedWeightsTraining(
            config,
            self.preset,
            loaders,
            self.device,
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
            self.finetune_lr *= options["batch"] / self.preset.batch
            self.tail_lr *= options["batch"] / self.preset.batch
        self.policy = aws_agent.PairPolicy(parameterization=config.parameterization)
        self.agent_lr = config.agent_lr if config.agent_lr is not None else self.stages.agent_lr
        if not self.agent_lr > 0:
            raise ValueError(f"agent_lr must be positive, got {self.agent_lr}")
        self.agent_optimizer = aws_agent.make_optimizer(self.policy, self.agent_lr, config.agent_betas)
        self.baseline = aws_agent.EMABaseline(config.baseline_weight)
        self.loop = 0
        self.history: list[dict] = []
        self.thetas = [self._theta()]  # θ before each loop's update, then after the last
        self.log = RunLog(config.out, "metrics", enabled=distributed.is_main())
        if not resume and distributed.is_main():
            jsonio.write_json(self.path("split.json"), self.split)
        if resume and os.path.exists(self.path(self.CHECKPOINT)):
            self._restore(checkpoint.load(self.path(self.CHECKPOINT)))
        else:
            self.log.truncate(0)

    def path(self, name: str) -> str:
        return os.path.join(self.config.out, name)

    def _theta(self) -> np.ndarray:
        return np.concatenate([self.policy.theta1.detach().numpy(), self.policy.theta2.detach().numpy().ravel()])

    # -- stage 1 --------------------------------------------------------------------------

    def run_stage1(self) -> None:
        """Train the shared weights (or find them done) and write ``shared.pt``."""
        distributed.barrier()
        if self._resume and os.path.exists(self.path(self.SHARED)):
            return
        if distributed.is_main():
            log.info(
                f"fastpolicy: AWS stage 1: {self.preset.epochs} epochs with the uniform policy, "
                f"{distributed.world_size()} process(es) → {self.config.out}"
            )
        self.stage1.run()
        if distributed.is_main():
            checkpoint.save(
                self.path(self.SHARED),
                {
                    "config": dataclasses.asdict(self.config),
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "history": self.stage1.history,
                    "data": self.stage1.data,
                },
            )
        distributed.barrier()

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
            augment={"cutout": self.preset.cutout},
            **sharding,
        )

    def shared_state(self) -> dict:
        """The saved shared weights and optimizer state (read once, checked against this config)."""
        if self._shared is None:
            state = checkpoint.load(self.path(self.SHARED))
            check_same_settings(
                state["config"], dataclasses.asdict(self.config), self.path(self.SHARED), ignored=self.RESUME_IGNORED
            )
            check_same_data(state.get("data"), self.stage1.data, self.path(self.SHARED))
            self._shared = state
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
        scheduler = self.finetune_scheduler()
        counts = np.zeros(distribution.n_elements**2, dtype=np.int64)

        def count(batch):
            if batch.version != version:
                raise RuntimeError(f"batch augmented with policy version {batch.version}, expected {version}")
            pairs = distribution.pairs_of(batch.params)
            counts[:] += np.bincount(pairs[:, 0] * distribution.n_elements + pairs[:, 1], minlength=counts.size)

        accuracies, train_loss = [], float("nan")
        for epoch in range(self.stages.finetune_epochs):
            train = loop.train_epoch(
                self.model,
                self.train_loader,
                self.optimizer,
                scheduler,
                1,
                self.device,
                desc=f"loop {self.loop} fine-tune {epoch}",
                progress=self.config.progress,
                on_batch=count,
                sync=False,
            )
            train_loss = train["loss"]
            accuracies.append(
                loop.evaluate(self.model, self.val_loader, self.device, progress=self.config.progress, sync=False)[
                    "accuracy"
                ]
            )
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
        row |= {"baseline": self.baseline.value, "entropy": updated.entropy(), "seconds": time.time() - start}
        for i, (first, second, probability) in enumerate(updated.top_pairs(self.config.top_k), 1):
            row |= {f"top{i}_pair": f"{first}+{second}", f"top{i}_prob": probability}
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
        if distributed.is_main():
            log.info(
                f"fastpolicy: AWS stage 2: {self.stages.loops} loops × {self.stages.finetune_epochs} fine-tuning "
                f"epoch(s) at lr {self.finetune_lr:g}, {distributed.world_size()} candidate(s) per loop"
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
        atomic.savez(self.path("distributions.npz"), theta1=thetas[:, :e], theta2=thetas[:, e:].reshape(-1, e, e))
        plots.plot_pair_heatmap(distribution, self.path("distribution_heatmap.png"))
        plots.plot_top_pairs(distribution, self.path("top_pairs.png"))
        if self.history:
            names = [el.name for el in distribution.space.elements]
            top = [
                (names.index(a), names.index(b), f"{a}+{b}") for a, b, _ in distribution.top_pairs(self.config.top_k)
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
        self.stage1.write_artefacts()  # samples.png (stage 1's last batch) and summary.json, overwritten below
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
        checkpoint.save_distributed(
            self.path(self.CHECKPOINT),
            {
                "config": dataclasses.asdict(self.config),
                "loop": self.loop,
                "history": self.history,
                "policy": self.policy.state_dict(),
                "agent_optimizer": self.agent_optimizer.state_dict(),
                "baseline": self.baseline.state_dict(),
                "thetas": self.thetas,
                "data": self.stage1.data,
            },
            self.train_loader,
        )

    def _restore(self, state: dict) -> None:
        check_same_settings(
            state["config"], dataclasses.asdict(self.config), self.path(self.CHECKPOINT), ignored=self.RESUME_IGNORED
        )
        check_same_data(state.get("data"), self.stage1.data, self.path(self.CHECKPOINT))
        self.loop, self.history = state["loop"], state["history"]
        self.thetas = [np.asarray(theta, dtype=np.float64) for theta in state["thetas"]]  # tensors in the file
        self.policy.load_state_dict(state["policy"])
        self.agent_optimizer.load_state_dict(state["agent_optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        checkpoint.restore_distributed(state, self.path(self.CHECKPOINT), self.train_loader)
        self.log.truncate(self.loop)
        if distributed.is_main():
            log.info(f"fastpolicy: resumed {self.config.out} after loop {self.loop - 1}")


__all__ = ["REWARDS", "AWSConfig", "AWSSearch", "SharedWeightsTraining"]
