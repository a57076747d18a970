"""The loader's cost inside training (GPU): a ResNet-50 step fed by the loader vs by pre-staged tensors.

One step = bf16 autocast, channels-last forward and backward of ResNet-50 on ``M·N`` rows of
224² and an SGD (Nesterov) update — the per-GPU work of the ImageNet preset on 64 GPUs
(N = 32, M = 8). "Pre-staged" trains on one batch already on the GPU, over and over;
"fed by fastpolicy" takes every step's batch from :class:`~fastpolicy.loader.PolicyDALILoader`
(DALI decode, M random Adversarial-AutoAugment policies on the CUDA kernels). The
difference is what the loader costs the training loop; peak GPU memory is recorded too.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..loader.settings import Pipeline
from ..policy import Policy
from ..train.models import build_model
from .timing import endless, median_rate


def run_training(
    root: str,
    N: int,
    M: int,
    steps: int,
    warmup: int,
    repeats: int,
    threads: int,
    priority: str | None = Pipeline.dali_priority,
    num_classes: int = 1000,
    seed: int = 0,
) -> list[dict]:
    """Rows ``{"scenario": "training", "contender", "images_per_s", ...}`` plus the overhead in
    percent; ``priority``: the loader's ``Pipeline.dali_priority``."""
    from ..loader import PolicyDALILoader

    torch.manual_seed(seed)
    device = torch.device("cuda")
    model = build_model("resnet50", num_classes, 3).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    loader = PolicyDALILoader(
        root,
        batch_size=N,
        M=M,
        image_size=224,
        device="gpu",
        policies=[Policy.random(rng) for _ in range(M)],
        pipeline=Pipeline(seed=seed, num_threads=threads, dali_priority=priority),
    )

    def step(images, labels):
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(images).float(), labels % num_classes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def fed():
        for batch in endless(loader):
            step(batch.images, batch.labels)
            yield

    first = next(iter(loader))
    staged_images, staged_labels = first.images.clone(), first.labels.clone()

    def staged():
        while True:
            step(staged_images, staged_labels)
            yield

    torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize
    staged_rate = median_rate(staged, M * N, steps, warmup, repeats, sync)
    fed_rate = median_rate(fed, M * N, steps, warmup, repeats, sync)
    memory = torch.cuda.max_memory_allocated() / 2**30
    base = {"scenario": "training", "case": "resnet50_step", "M": M, "N": N, "device": "gpu", "peak_memory_gib": memory}
    return [
        base | {"contender": "ResNet-50 step, pre-staged GPU tensors", "images_per_s": staged_rate},
        base
        | {
            "contender": "ResNet-50 step, fed by fastpolicy",
            "images_per_s": fed_rate,
            "loader_overhead_percent": 100 * (staged_rate / fed_rate - 1),
        },
    ]


__all__ = ["run_training"]
