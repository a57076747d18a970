"""The policy stage alone, on pre-decoded uint8 batches of real-photo crops.

Per op family of the registry, fastpolicy's stage applies one op per sample (its own op
and bin): on a GPU the fused kernels (:class:`~fastpolicy.backends.kernel_stage.KernelPolicyStage`,
with DALI's per-sample ``select`` on the same parameters beside them), on the CPU DALI's
operators (:class:`~fastpolicy.backends.dali_stage.DaliPolicyStage`). Then whole
policies: M = 8 random Adversarial-AutoAugment policies, and AutoAugment's ImageNet
policy, which the peers apply too — torchvision v2 ``AutoAugment`` sample by sample,
DALI ``auto_augment_image_net`` on the batch, Kornia ``AutoAugment`` on the batch
(one sub-policy per call).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.photo_tree import photo_batch
from ..params import PolicyParams
from ..policy import Policy
from ..sampling import sample_policies
from ..registry import OPS
from ..sampling import complete
from ..spaces import adversarial
from .peers import autoaugment_imagenet, kornia_available
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
    """One op of ``names`` per sample (random op and bin), in slot 0 of two."""
    op = np.full((n, 2), -1)
    op[:, 0] = rng.choice([OPS[name].id for name in names], n)
    return complete(op, rng.integers(0, 10, (n, 2)), adversarial(), rng)


def cases(n: int, rng: np.random.Generator) -> dict[str, PolicyParams]:
    """Case name → the per-sample parameters fastpolicy applies."""
    out = {name: family_params(ops, n, rng) for name, ops in families().items()}
    out["adversarial_policies"] = sample_policies([Policy.random(rng) for _ in range(8)], n // 8, rng)
    out["autoaugment_imagenet"] = autoaugment_imagenet().sample(n, rng)
    return out


def _dali_autoaugment(n: int, size: int, device: str, threads: int):
    from nvidia.dali import fn, pipeline_def
    from nvidia.dali.auto_aug import auto_augment

    def graph():
        images = fn.external_source(name="images", device=device, layout="HWC")
        return auto_augment.auto_augment_image_net(images, shape=(size, size))

    pipe = pipeline_def(graph, enable_conditionals=True)(batch_size=n, num_threads=threads,
                                                          device_id=0 if device == "gpu" else None,
                                                          prefetch_queue_depth=1)
    pipe.build()

    def run(images):
        pipe.feed_input("images", images)
        return pipe.run()
    return run


def peer_runs(images_hwc, device: str, threads: int) -> dict:
    """Contender name → ``run()`` applying AutoAugment's ImageNet policy to the batch."""
    from torchvision.transforms import v2

    target = torch.device("cuda" if device == "gpu" else "cpu")
    chw = torch.as_tensor(images_hwc, device=target).permute(0, 3, 1, 2).contiguous()
    torchvision_aa = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    runs = {"torchvision v2 AutoAugment (per sample)": lambda: [torchvision_aa(image) for image in chw]}
    try:
        dali = _dali_autoaugment(len(images_hwc), images_hwc.shape[1], device, threads)
        runs["DALI auto_aug ImageNet"] = lambda: dali(images_hwc)
    except ImportError:
        pass
    if kornia_available():
        from kornia.augmentation.auto import AutoAugment

        kornia_aa, floats = AutoAugment("imagenet").to(target), chw.float() / 255
        runs["Kornia AutoAugment (per batch)"] = lambda: kornia_aa(floats)
    return runs


def run_stage(n: int, size: int, device: str, warmup: int, repeats: int, threads: int, seed: int = 0) -> list[dict]:
    """Rows ``{"scenario": "stage", "case", "contender", "images_per_s", ...}`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    host = photo_batch(n, size, size)
    if device == "gpu":
        import cupy

        from ..backends.dali_stage import DaliPolicyStage
        from ..backends.kernel_stage import KernelPolicyStage

        images, sync = cupy.asarray(host), cupy.cuda.Device(0).synchronize
        ours, ours_name = KernelPolicyStage.on_device(0), "fastpolicy (CUDA kernels)"
        extra = {"DALI select (fastpolicy's DALI backend)":
                 DaliPolicyStage(n, size, size, device="gpu", device_id=0, num_threads=threads)}
        apply = ours.apply
    else:
        from ..backends.dali_stage import DaliPolicyStage

        images, sync = host, (lambda: None)
        stage = DaliPolicyStage(n, size, size, device="cpu", num_threads=threads)
        ours_name, extra = "fastpolicy (DALI CPU operators)", {}

        def apply(batch, params):
            stage.feed(batch, params)
            return stage.run()
    rows = []
    for case, params in cases(n, rng).items():
        seconds = median_seconds(lambda: apply(images, params), sync, warmup, repeats)
        base = {"scenario": "stage", "case": case, "M": None, "device": device, "images": n, "size": size}
        rows.append(base | {"contender": ours_name, "images_per_s": n / seconds})
        for name, other in extra.items():
            def select(other=other, params=params):
                other.feed(images, params)
                return other.run()  # output stays on the GPU; sync() waits for DALI's stream too
            rows.append(base | {"contender": name, "images_per_s": n / median_seconds(select, sync, warmup, repeats)})
        if case == "autoaugment_imagenet":
            for name, run in peer_runs(images, device, threads).items():
                rows.append(base | {"contender": name,
                                    "images_per_s": n / median_seconds(run, sync, warmup, repeats)})
    return rows


__all__ = ["families", "family_params", "cases", "peer_runs", "run_stage"]
