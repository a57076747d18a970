"""A short profile of the training step fed by the loader: where a step's time goes.

A ResNet-50 step (bf16 autocast on a GPU, channels-last, SGD with Nesterov momentum) on the
M·N rows of :class:`~fastpolicy.loader.PolicyDALILoader` with M random Adversarial-AutoAugment
policies, on a generated ImageNet-layout tree of real photos. After ``--warmup`` steps,
``--steps`` steps run under ``torch.profiler``; each step is split into ``loader.next``
(waiting for the batch) and ``train.step`` (forward, backward, update). The JSON holds the
wall seconds of both per step (medians) and the ops with the most self time (device time on
a GPU, CPU time on the CPU).

    python benchmarks/profile_step.py --device gpu             # benchmarks/results/profile_step_gpu.json
    python benchmarks/profile_step.py --device cpu --N 4 --M 2 --size 64 --model small_cnn \\
        --steps 2 --warmup 1 --out /tmp/profile.json          # a CPU smoke run: the numbers mean nothing
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function

from fastpolicy.bench import record
from fastpolicy.data.photo_tree import make_photo_tree
from fastpolicy.loader import PolicyDALILoader
from fastpolicy.policy import Policy
from fastpolicy.train.models import MODELS, build_model


def top_ops(prof, gpu: bool, count: int) -> list[dict]:
    """The ``count`` ops with the most self time: name, calls, self CPU and device ms."""
    rows = []
    for event in prof.key_averages():
        device_us = getattr(event, "self_device_time_total", 0.0) if gpu else 0.0
        rows.append(
            {
                "op": event.key,
                "calls": event.count,
                "self_cpu_ms": event.self_cpu_time_total / 1e3,
                "self_device_ms": device_us / 1e3,
            }
        )
    rows.sort(key=lambda row: row["self_device_ms" if gpu else "self_cpu_ms"], reverse=True)
    return rows[:count]


def profile_step(root: str, args) -> dict:
    """Run the warm-up and the profiled steps on the tree at ``root``; the results dict."""
    gpu = args.device == "gpu"
    device = torch.device("cuda" if gpu else "cpu")
    torch.manual_seed(args.seed)
    model = build_model(args.model, 1000, 3).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    loader = PolicyDALILoader(
        root,
        batch_size=args.N,
        M=args.M,
        image_size=args.size,
        device=args.device,
        policies=[Policy.random(rng) for _ in range(args.M)],
    )

    def batches():
        while True:
            yield from loader

    def step(images, labels) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu):
            loss = F.cross_entropy(model(images).float(), labels % 1000)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    stream = batches()
    for _ in range(args.warmup):
        batch = next(stream)
        step(batch.images, batch.labels)
    if gpu:
        torch.cuda.synchronize()
    waits, steps = [], []
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            started = time.perf_counter()
            with record_function("loader.next"):
                batch = next(stream)
            waited = time.perf_counter()
            with record_function("train.step"):
                step(batch.images, batch.labels)
                if gpu:
                    torch.cuda.synchronize()
            waits.append(waited - started)
            steps.append(time.perf_counter() - waited)
    loader.close()
    rows = args.M * args.N
    return {
        "loader_next_ms": 1e3 * statistics.median(waits),
        "train_step_ms": 1e3 * statistics.median(steps),
        "images_per_s": rows / statistics.median([w + s for w, s in zip(waits, steps, strict=True)]),
        "loader_share": statistics.median(waits)
        / statistics.median([w + s for w, s in zip(waits, steps, strict=True)]),
        "top_ops": top_ops(prof, gpu, args.top),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="gpu" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--N", type=int, default=32, help="distinct images per step")
    parser.add_argument("--M", type=int, default=8, help="copies (policies) per image")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels")
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet50")
    parser.add_argument("--images", type=int, default=512, help="images in the generated tree")
    parser.add_argument("--warmup", type=int, default=5, help="steps before profiling")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps")
    parser.add_argument("--top", type=int, default=25, help="ops listed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON (default benchmarks/results/profile_step_<device>.json)")
    args = parser.parse_args(argv)
    if args.device == "gpu" and not torch.cuda.is_available():
        raise SystemExit("profile_step: --device gpu, but torch sees no CUDA GPU")
    with tempfile.TemporaryDirectory(prefix="fastpolicy-profile-") as root:
        make_photo_tree(root, classes=8, per_class=max(1, args.images // 8), size=(500, 375))
        results = profile_step(root, args)
    out = args.out or os.path.join("benchmarks", "results", f"profile_step_{args.device}.json")
    return record.write(
        "profile_step",
        {k: v for k, v in vars(args).items() if k != "out"},
        results,
        out,
        note="medians over the profiled steps; top_ops by self device time on a GPU, self CPU time on the CPU",
        modules=("nvidia.dali", "cupy"),
    )


if __name__ == "__main__":
    main()
