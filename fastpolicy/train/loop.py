"""The target network's side of a search: optimizer, LR schedule, one training epoch, evaluation.

Every step trains on the loader's whole M·N batch with one mean loss (Adversarial
AutoAugment's equation 4: same learning rate, no rescaling) and reports each policy's
mean loss L_m over its N samples. A non-finite loss is skipped — no update, no reward —
with a warning, and counted.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..log import bars_disabled
from . import distributed
from .presets import Preset


def make_optimizer(model: torch.nn.Module, preset: Preset, lr_scale: float = 1.0) -> torch.optim.SGD:
    """SGD with the preset's momentum, Nesterov, weight decay and learning rate (× ``lr_scale``);
    fused on a GPU (one kernel, and a non-finite step is skipped on the device: see
    :func:`train_epoch`)."""
    fused = next(model.parameters()).is_cuda
    return torch.optim.SGD(
        model.parameters(),
        lr=preset.lr * lr_scale,
        momentum=preset.momentum,
        nesterov=preset.nesterov,
        weight_decay=preset.weight_decay,
        fused=fused or None,
    )


def make_scheduler(
    optimizer, preset: Preset, steps_per_epoch: int, start_step: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: cosine to 0 over ``preset.epochs``, or ×``gamma`` at each milestone epoch;
    ``start_step``: begin that many steps into it (a run that continues another's schedule)."""
    total = max(1, preset.epochs * steps_per_epoch)
    if preset.schedule == "cosine":

        def factor(step: int) -> float:
            return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    elif preset.schedule == "step":

        def factor(step: int) -> float:
            return preset.gamma ** sum(step >= m * steps_per_epoch for m in preset.milestones)
    elif preset.schedule == "constant":

        def factor(step: int) -> float:
            return 1.0
    else:
        raise ValueError(f"unknown schedule {preset.schedule!r}; use 'cosine', 'step' or 'constant'")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step + start_step))


def per_policy_mean(per_sample: torch.Tensor, policy_ids: torch.Tensor, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-policy sums and counts (float [M] each) of ``per_sample`` values (float [B])."""
    sums = torch.zeros(M, device=per_sample.device).index_add_(0, policy_ids, per_sample.float())
    counts = torch.bincount(policy_ids, minlength=M).to(sums)
    return sums, counts


def _autocast(device: torch.device):
    return (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )


def _steps(loader, sync: bool) -> int:
    """Steps every process can take this epoch: the fewest batches of any shard (DDP needs
    the same number of steps on every rank)."""
    steps = torch.tensor([len(loader)], dtype=torch.int64)
    if sync and distributed.is_distributed():
        steps = steps.to("cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(steps, op=torch.distributed.ReduceOp.MIN)
    return int(steps)


def _all_finite(loss: torch.Tensor, sync: bool) -> bool:
    """Whether the loss is finite on *every* process (so all ranks skip a step together)."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    return float(distributed.all_reduce_sum(bad) if sync else bad) == 0


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _skips_on_device(optimizer) -> bool:
    """Whether ``optimizer`` can skip a step on the device: fused SGD reads ``found_inf``,
    once its momentum buffers exist (torch's fused first step allocates them uninitialized
    and would leave them so if skipped; the first step therefore checks on the host)."""
    for group in optimizer.param_groups:
        if not group.get("fused"):
            return False
        if group.get("momentum") and any(
            optimizer.state.get(p, {}).get("momentum_buffer") is None for p in group["params"]
        ):
            return False
    return True


def train_epoch(
    model,
    loader,
    optimizer,
    scheduler,
    M: int,
    device: torch.device,
    desc: str = "train",
    progress: bool = True,
    on_batch=None,
    sync: bool = True,
    on_step=None,
    split_halves: bool = False,
) -> dict:
    """One pass over ``loader``; returns ``loss``/``accuracy`` (means over the epoch's samples),
    ``policy_loss`` (float [M] list: each policy's per-batch mean loss averaged over the
    epoch's batches — the reward of Adversarial AutoAugment), ``skipped`` (non-finite steps)
    ``last_images`` and ``last_params`` (the last batch and the :class:`~fastpolicy.params.PolicyParams`
    that augmented it, None without a policy; for sample grids). ``on_batch(batch)`` is called
    with every batch the loader yields (skipped ones too), before its step;
    ``on_step(batch, policy_means)`` after every step, with that batch's per-policy mean
    losses (float [M] tensor on ``device``, global under ``torchrun``; NaN where the step was
    skipped, so a consumer converts them to numbers only when it needs them).
    ``split_halves``: ``on_step(batch, policy_means, halves)`` instead, ``halves`` (float [2, M])
    the per-policy mean losses over the batch's even and odd rows apart (two disjoint halves of
    each policy's copies), for the rewards' split-half reliability.

    No host synchronization per step on a GPU: a loader writing channels-last is not
    converted, and with fused SGD (:func:`make_optimizer` on a GPU) a non-finite loss skips
    the update on the device (``found_inf``) and is counted at the epoch's end.

    Under ``torchrun`` (``model`` wrapped in DDP, ``loader`` one shard): every rank takes
    the same number of steps, per-policy loss sums and counts are summed over the ranks at
    every step before the per-batch means are formed, and the epoch's figures are
    global — each rank returns what one process over the global batch would. ``sync=False``:
    this process trains alone (AWS's stage 2: one candidate per rank), no collectives.
    """
    reduce = distributed.all_reduce_sum if sync else _same
    model.train()
    total = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, seen
    policy_sum, batches = torch.zeros(M, device=device), torch.zeros((), device=device)
    skipped, skipped_on_device = 0, torch.zeros((), device=device)
    on_device = _skips_on_device(optimizer)
    fused = all(group.get("fused") for group in optimizer.param_groups)
    last = None
    steps = _steps(loader, sync)
    for step, batch in zip(
        range(steps), tqdm(loader, desc=desc, leave=False, disable=bars_disabled(progress), total=steps)
    ):
        if on_batch is not None:
            on_batch(batch)
        images, labels, policy_ids = (t.to(device, non_blocking=True) for t in batch)
        if device.type == "cuda" and not images.is_contiguous(memory_format=torch.channels_last):
            images = images.contiguous(memory_format=torch.channels_last)  # a loader not writing channels-last
        with _autocast(device):
            logits = model(images)
        per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
        loss = per_sample.mean()
        if on_device:
            # no host synchronization: fused SGD skips the update where found_inf is 1
            finite = reduce((~torch.isfinite(loss.detach())).float().reshape(1)) == 0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.found_inf = (~finite).float()
            optimizer.step()
            del optimizer.found_inf
            scheduler.step()
            skipped_on_device += (~finite).float().sum()
        else:
            if not _all_finite(loss, sync):
                skipped += 1
                warnings.warn(
                    f"{desc}: non-finite loss at step {getattr(batch, 'step', step)}; step skipped, no reward recorded",
                    stacklevel=2,
                )
                scheduler.step()
                continue
            finite = torch.ones(1, dtype=torch.bool, device=device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            on_device = fused and _skips_on_device(optimizer)  # from the second step on
        with torch.no_grad():
            sums, counts = per_policy_mean(per_sample.detach(), policy_ids, M)
            both = reduce(torch.cat([sums, counts]))
            means = torch.where(finite, both[:M] / both[M:].clamp(min=1), torch.nan)
            policy_sum += torch.where(finite, means, 0.0)
            batches += finite.float().sum()
            stats = torch.stack(
                [
                    per_sample.detach().sum().double(),
                    (logits.argmax(1) == labels).sum().double(),
                    torch.tensor(float(len(labels)), dtype=torch.float64, device=device),
                ]
            )
            total += torch.where(finite, stats, 0.0)
            if split_halves:
                parts = [per_policy_mean(per_sample.detach()[h::2], policy_ids[h::2], M) for h in (0, 1)]
                pooled = reduce(torch.cat([x for part in parts for x in part])).reshape(2, 2, M)  # half, sum/count, M
                halves = torch.where(finite, pooled[:, 0] / pooled[:, 1].clamp(min=1), torch.nan)
        last = batch
        if on_step is not None:
            if split_halves:
                on_step(batch, means, halves)
            else:
                on_step(batch, means)
    if fused:
        on_device_skips = int(skipped_on_device)  # one synchronization per epoch
        skipped += on_device_skips
        if on_device_skips:
            warnings.warn(
                f"{desc}: {on_device_skips} step(s) with a non-finite loss skipped, no reward recorded", stacklevel=2
            )
    if steps < len(loader) and hasattr(loader, "reset"):
        loader.reset()  # this shard had a batch more than another: drop it, end the epoch
    loss_sum, correct, seen = reduce(total).tolist()
    return {
        "loss": loss_sum / max(seen, 1),
        "accuracy": correct / max(seen, 1),
        "policy_loss": (policy_sum / batches.clamp(min=1)).tolist(),
        "skipped": skipped,
        "last_images": None if last is None else last[0].detach().cpu(),
        "last_params": getattr(last, "params", None),
    }


@torch.no_grad()
def evaluate(model, loader, device: torch.device, progress: bool = True, sync: bool = True) -> dict:
    """Mean cross-entropy ``loss`` and top-1 ``accuracy`` over one pass of ``loader``; with
    ``sync`` under ``torchrun``, over all ranks' shards (else this process's loader alone)."""
    model.eval()
    total = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, seen
    for batch in tqdm(loader, desc="eval", leave=False, disable=bars_disabled(progress)):
        images, labels = batch[0].to(device), batch[1].to(device)
        if device.type == "cuda" and not images.is_contiguous(memory_format=torch.channels_last):
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device):
            logits = model(images)
        total += torch.stack(
            [
                F.cross_entropy(logits.float(), labels, reduction="sum").double(),
                (logits.argmax(1) == labels).sum().double(),
                torch.tensor(float(len(labels)), dtype=torch.float64, device=device),
            ]
        )
    loss_sum, correct, seen = (distributed.all_reduce_sum(total) if sync else total).tolist()
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1)}
