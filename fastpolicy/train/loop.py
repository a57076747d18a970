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

from .presets import Preset


def make_optimizer(model: torch.nn.Module, preset: Preset, lr_scale: float = 1.0) -> torch.optim.SGD:
    """SGD with the preset's momentum, Nesterov, weight decay and learning rate (× ``lr_scale``)."""
    return torch.optim.SGD(model.parameters(), lr=preset.lr * lr_scale, momentum=preset.momentum,
                           nesterov=preset.nesterov, weight_decay=preset.weight_decay)


def make_scheduler(optimizer, preset: Preset, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: cosine to 0 over ``preset.epochs``, or ×``gamma`` at each milestone epoch."""
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
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def per_policy_mean(per_sample: torch.Tensor, policy_ids: torch.Tensor, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-policy sums and counts (float [M] each) of ``per_sample`` values (float [B])."""
    sums = torch.zeros(M, device=per_sample.device).index_add_(0, policy_ids, per_sample.float())
    counts = torch.bincount(policy_ids, minlength=M).to(sums)
    return sums, counts


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def train_epoch(model, loader, optimizer, scheduler, M: int, device: torch.device, desc: str = "train",
                progress: bool = True, on_batch=None) -> dict:
    """One pass over ``loader``; returns ``loss``/``accuracy`` (means over the epoch's samples),
    ``policy_loss`` (float [M] list: each policy's per-batch mean loss averaged over the
    epoch's batches — the reward of Adversarial AutoAugment), ``skipped`` (non-finite steps)
    and ``last_images`` (the last batch, for sample grids). ``on_batch(batch)`` is called
    with every batch the loader yields (skipped ones too), before its step."""
    model.train()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    policy_sum, batches, seen, skipped = torch.zeros(M, device=device), 0, 0, 0
    last = None
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        if on_batch is not None:
            on_batch(batch)
        images, labels, policy_ids = (t.to(device, non_blocking=True) for t in batch)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device):
            logits = model(images)
        per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
        loss = per_sample.mean()
        if not torch.isfinite(loss):
            skipped += 1
            warnings.warn(f"{desc}: non-finite loss at step {batch.step}; step skipped, no reward recorded")
            scheduler.step()
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            sums, counts = per_policy_mean(per_sample.detach(), policy_ids, M)
            policy_sum += sums / counts.clamp(min=1)
            batches += 1
            total_loss += per_sample.detach().sum()
            correct += (logits.argmax(1) == labels).sum()
            seen += len(labels)
        last = batch
    return {"loss": float(total_loss) / max(seen, 1), "accuracy": float(correct) / max(seen, 1),
            "policy_loss": (policy_sum / max(batches, 1)).tolist(), "skipped": skipped,
            "last_images": None if last is None else last.images.detach().cpu()}


@torch.no_grad()
def evaluate(model, loader, device: torch.device, progress: bool = True) -> dict:
    """Mean cross-entropy ``loss`` and top-1 ``accuracy`` over one pass of ``loader``."""
    model.eval()
    total, correct, seen = 0.0, 0, 0
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        images, labels = batch[0].to(device), batch[1].to(device)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device):
            logits = model(images)
        total += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    return {"loss": total / max(seen, 1), "accuracy": correct / max(seen, 1)}
