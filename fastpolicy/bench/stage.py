"""The policy stage alone, on pre-decoded uint8 batches of real-photo crops.

Per op family of the registry, fastpolicy's stage applies one op per sample (its own op
and bin): on a GPU the fused kernels, on the CPU the native stage where a compiler is
(else DALI's operators), with DALI's per-sample ``select`` on the same parameters beside
them (:func:`~fastpolicy.backends.stage.make_stage`, uint8 output). Then whole policies:
M = 8 random Adversarial-AutoAugment policies, and the standard policies of
:mod:`fastpolicy.policies`, which the peers apply too — torchvision v2 sample by sample,
DALI ``auto_aug`` on the batch, Kornia on the batch (AutoAugment; one sub-policy per call).

:func:`cases` is the one list of stage cases (``benchmarks/policy_stage.py`` uses it too).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..backends.stage import OutputSpec, default_stage, make_stage, stage_backend
from ..data.photo_tree import photo_batch
from ..magnitude import SPACE_BINS
from ..params import PolicyParams
from ..policies import STANDARD
from ..policy import Policy
from ..registry import OPS
from ..sampling import complete, sample_policies
from ..spaces import adversarial
from .peers import NAMES, kornia_available, torchvision_policy
from .timing import median_seconds


def families() -> dict[str, list[str]]:
    """Op names per family, from the registry's kinds and statistics."""

    def family(spec) -> str:
        if spec.kind == "affine":
            return "geometric"
        if spec.kind == "lut":
            return "histogram" if spec.stats else "pointwise"
        return spec.kind

    out: dict[str, list[str]] = {}
    for spec in OPS.values():
        out.setdefault(family(spec), []).append(spec.name)
    return out


def family_params(names: list[str], n: int, rng: np.random.Generator) -> PolicyParams:
    """One op of ``names`` per sample (random op and bin), in slot 0 of two; an op outside the
    adversarial space (timm's SolarizeAdd, GaussianBlur) takes its value from its first space."""
    op = np.full((n, 2), -1)
    op[:, 0] = rng.choice([OPS[name].id for name in names], n)
    params = complete(op, rng.integers(0, 10, (n, 2)), adversarial(), rng)
    for name in names:
        spec = OPS[name]
        space, magnitude = next(iter(spec.magnitudes.items()))
        if "adversarial" not in spec.magnitudes and magnitude is not None:
            rows = np.flatnonzero(params.op[:, 0] == spec.id)
            bins = SPACE_BINS[space]
            params.value[rows, 0] = magnitude.value(rng.integers(0, bins, len(rows)), n_bins=bins)
    return params


def cases(n: int, rng: np.random.Generator, standard: bool = True) -> dict[str, PolicyParams]:
    """Case name → the per-sample parameters fastpolicy applies: one per op family, M = 8
    random adversarial policies, and (``standard``) each standard policy on all ``n``."""
    out = {name: family_params(ops, n, rng) for name, ops in families().items()}
    out["adversarial_policies"] = sample_policies([Policy.random(rng) for _ in range(8)], n // 8, rng)
    if standard:
        for name, make in STANDARD.items():
            if not getattr(make, "mixes", False):  # AugMix's chains and mix are not one stage call
                out[name] = sample_policies([make()], n, rng)
    return out


def _dali_standard(policy: str, n: int, size: int, device: str, threads: int):
    from nvidia.dali import fn, pipeline_def

    from .peers import _dali_policy

    def graph():
        images = fn.external_source(name="images", device=device, layout="HWC")
        return _dali_policy(images, policy)

    pipe = pipeline_def(graph, enable_conditionals=True)(
        batch_size=n, num_threads=threads, device_id=0 if device == "gpu" else None, prefetch_queue_depth=1
    )
    pipe.build()

    def run(images):
        pipe.feed_input("images", images)
        return pipe.run()

    return run


def peer_runs(images_hwc, device: str, threads: int, policy: str = "autoaugment") -> dict:
    """Contender name → ``run()`` applying standard policy ``policy`` to the batch."""
    target = torch.device("cuda" if device == "gpu" else "cpu")
    chw = torch.as_tensor(images_hwc, device=target).permute(0, 3, 1, 2).contiguous()
    transform = torchvision_policy(policy)
    runs = {f"torchvision v2 {NAMES[policy]} (per sample)": lambda: [transform(image) for image in chw]}
    try:
        dali = _dali_standard(policy, len(images_hwc), images_hwc.shape[1], device, threads)
        runs[f"DALI auto_aug {NAMES[policy]}"] = lambda: dali(images_hwc)
    except ImportError:
        pass
    if policy == "autoaugment" and kornia_available():
        from kornia.augmentation.auto import AutoAugment

        kornia_aa, floats = AutoAugment("imagenet").to(target), chw.float() / 255
        runs["Kornia AutoAugment (per batch)"] = lambda: kornia_aa(floats)
    return runs


def run_stage(n: int, size: int, device: str, warmup: int, repeats: int, threads: int, seed: int = 0) -> list[dict]:
    """Rows ``{"scenario": "stage", "case", "contender", "images_per_s", ...}`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    host = photo_batch(n, size, size)
    ours = default_stage(device)
    contenders = {ours.label: make_stage(ours.name, device, max_batch=n, height=size, width=size)}
    peer = stage_backend("dali")  # DALI's per-sample select on the same parameters, beside ours
    if peer.name != ours.name and peer.available():
        contenders["DALI select (fastpolicy's DALI backend)"] = make_stage(
            peer.name, device, max_batch=n, height=size, width=size, num_threads=threads
        )
    target = torch.device("cuda" if device == "gpu" else "cpu")
    images = torch.as_tensor(host, device=target)
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    spec = OutputSpec("uint8", "channels_last")
    rows = []
    for case, params in cases(n, rng).items():
        base = {"scenario": "stage", "case": case, "M": None, "device": device, "images": n, "size": size}
        for name, stage in contenders.items():
            seconds = median_seconds(functools.partial(stage.apply, images, params, spec), sync, warmup, repeats)
            rows.append(base | {"contender": name, "images_per_s": n / seconds})
        if case in STANDARD:
            for name, run in peer_runs(host, device, threads, case).items():
                rows.append(base | {"contender": name, "images_per_s": n / median_seconds(run, sync, warmup, repeats)})
    return rows


__all__ = ["cases", "families", "family_params", "peer_runs", "run_stage"]
