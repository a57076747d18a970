"""Loader throughput on this machine: PolicyDALILoader beside torchvision v2 AutoAugment, as ratios.

Same images for both: a generated ImageNet-layout JPEG tree of real photos at ~500×375.
Both decode each image once and make M copies, each with random-resized-crop 224 + flip
and a per-copy policy (fastpolicy: M random Adversarial-AutoAugment policies, two ops per
sample; torchvision: ``v2.AutoAugment(IMAGENET)``, one sub-policy per call), ending in
float NCHW tensors. torchvision runs in a DataLoader with ``--workers`` processes;
fastpolicy's DALI pipelines use ``--threads`` threads. Warm-up batches are excluded;
each figure is the median of ``--repeats`` timed runs.

    python benchmarks/loader_throughput.py            # writes benchmarks/results/loader_<device>.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from torchvision.transforms import v2

import fastpolicy
from fastpolicy import Policy
from fastpolicy.data.photo_tree import make_photo_tree
from fastpolicy.loader import PolicyDALILoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import record  # noqa: E402


class Copies(torch.utils.data.Dataset):
    """torchvision peer: decode once, ``M`` independently augmented copies per image."""

    def __init__(self, root: str, M: int, size: int):
        self.folder = torchvision.datasets.ImageFolder(root)
        self.M = M
        self.transform = v2.Compose([
            v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
            v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(fastpolicy.loader.loader.IMAGENET_MEAN, fastpolicy.loader.loader.IMAGENET_STD)])

    def __len__(self):
        return len(self.folder)

    def __getitem__(self, index):
        path, label = self.folder.samples[index]
        image = torchvision.io.decode_image(path, mode=torchvision.io.ImageReadMode.RGB)
        return torch.stack([self.transform(image) for _ in range(self.M)]), label


def time_loader(make_iter, images_per_batch: int, batches: int, warmup: int, repeats: int) -> float:
    """Median output images/s over ``repeats`` runs of ``batches`` batches after ``warmup``."""
    rates = []
    for _ in range(repeats):
        it = make_iter()
        for _ in range(warmup):
            next(it)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * images_per_batch / (time.perf_counter() - start))
    return statistics.median(rates)


def endless(loader):
    while True:
        yield from loader


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="images in the generated tree")
    parser.add_argument("--batch", type=int, default=32, help="N, distinct images per batch")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="torchvision DataLoader workers")
    parser.add_argument("--threads", type=int, default=2, help="DALI threads per pipeline")
    parser.add_argument("--M", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/loader_<device>.json)")
    args = parser.parse_args(argv)

    root = tempfile.mkdtemp(prefix="fastpolicy-bench-")
    make_photo_tree(root, classes=8, per_class=args.images // 8, size=(500, 375))
    rng = np.random.default_rng(0)
    rows = []
    for M in args.M:
        loader = PolicyDALILoader(root, batch_size=args.batch, M=M, image_size=224, device=args.device,
                                  num_threads=args.threads, policies=[Policy.random(rng) for _ in range(M)])
        ours = time_loader(lambda: endless(loader), M * args.batch, args.batches, args.warmup, args.repeats)
        peer_data = torch.utils.data.DataLoader(Copies(root, M, 224), batch_size=args.batch, shuffle=True,
                                                num_workers=args.workers, drop_last=True, persistent_workers=True)
        peer = time_loader(lambda: endless(peer_data), M * args.batch, args.batches, args.warmup, args.repeats)
        rows.append({"M": M, "fastpolicy_images_per_s": ours, "torchvision_v2_autoaugment_images_per_s": peer,
                     "ratio_fastpolicy_over_torchvision": ours / peer})
        print(f"M={M}: fastpolicy {ours:8.1f} img/s   torchvision v2 AutoAugment ({args.workers} workers) "
              f"{peer:8.1f} img/s   ratio {ours / peer:.2f}")
    out = args.out or os.path.join(os.path.dirname(__file__), "results", f"loader_{args.device}.json")
    return record.write(
        "loader_throughput", {k: v for k, v in vars(args).items() if k != "out"}
        | {"image_size": 224, "source_size": [500, 375]}, rows, out,
        note="images/s counts output images (M copies of N images per batch); absolute numbers "
             "depend on this machine, compare the ratios",
        modules=("torchvision", "nvidia.dali"))


if __name__ == "__main__":
    main()
