"""``PolicyAugment``: a learned or standard policy as a torchvision v2 transform.

    from torchvision.transforms import v2
    from fastpolicy.transforms import PolicyAugment

    train = v2.Compose([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(),
                        PolicyAugment("runs/adversarial-…/schedule.json"),   # or "autoaugment", a Policy, …
                        v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

Each image gets its own sub-policy (a batch ``[B, C, H, W]`` too), with the registry's
PIL-faithful ops: PIL images and CPU tensors through the native CPU stage (the reference
where no C++ compiler is), CUDA batches through the fused kernels. Randomness comes from torch's global
generator, so ``torch.manual_seed`` makes a run reproducible and every ``DataLoader``
worker draws its own stream.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import is_pure_tensor

from .backends.stage import OutputSpec, default_stage, make_stage
from .params import PolicyParams
from .policies import resolve
from .reference.geometry import FILL, check_fill
from .sampling import complete, sample_policies
from .schedule import PolicySchedule

_UINT8 = OutputSpec("uint8", "nchw")


class PolicyAugment(v2.Transform):
    """Apply a policy to images, a sub-policy per image.

    Args:
        policy: a :class:`~fastpolicy.policy.Policy`, an
            :class:`~fastpolicy.distribution.AWSDistribution`, a
            :class:`~fastpolicy.schedule.PolicySchedule` (each image picks one of the current
            epoch's policies uniformly; see :meth:`set_epoch`), a standard policy of
            :mod:`fastpolicy.policies` or its name (``"autoaugment"``,
            ``"autoaugment:cifar10"``, ``"randaugment"``, ``"trivialaugment_wide"``), or the
            path of any of their JSON files (what ``fastpolicy search`` writes).
        fill: the 0..255 level geometric ops move in from outside the image.
        magnitude_scale: values moved to ``identity + scale · (value − identity)`` (1: as
            sampled; see :meth:`~fastpolicy.params.PolicyParams.scaled`).

    Input: a PIL image (mode ``L`` or ``RGB``), a uint8 tensor ``[C, H, W]`` or a batch
    ``[B, C, H, W]`` (C = 1 or 3), or a :class:`torchvision.tv_tensors.Image`; the output
    has the input's type, device, shape and memory layout. Other entries of a sample
    (labels) pass through; bounding boxes and masks are refused, since geometric ops would
    move the image but not them. A single image's SamplePairing partner is itself.
    """

    _transformed_types = (is_pure_tensor, tv_tensors.Image, PIL.Image.Image)

    def __init__(self, policy, *, fill: int = FILL, magnitude_scale: float = 1.0):
        super().__init__()
        policy = resolve(policy)
        fill = check_fill(fill)
        if not 0 < magnitude_scale <= 1:
            raise ValueError(f"magnitude_scale must be in (0, 1], got {magnitude_scale!r}")
        self.schedule = policy if isinstance(policy, PolicySchedule) else None
        if self.schedule is not None and len(self.schedule) == 0:
            raise ValueError("the policy schedule is empty")
        self.fill, self.magnitude_scale = int(fill), float(magnitude_scale)
        self.epoch = 0
        self.samplers = list(self.schedule[0]) if self.schedule is not None else [policy]
        self._stages: dict = {}

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule's policies of ``epoch`` (epochs past its end: its last epoch's)."""
        if self.schedule is None:
            raise ValueError("set_epoch needs a PolicySchedule; this transform applies one policy")
        if epoch < 0:
            raise ValueError(f"epoch must be ≥ 0, got {epoch}")
        self.epoch = epoch
        self.samplers = list(self.schedule[min(epoch, len(self.schedule) - 1)])

    def check_inputs(self, flat_inputs) -> None:
        for item in flat_inputs:
            if isinstance(
                item,
                (
                    tv_tensors.BoundingBoxes,
                    tv_tensors.Mask,
                    tv_tensors.KeyPoints if hasattr(tv_tensors, "KeyPoints") else tv_tensors.Mask,
                ),
            ):
                raise TypeError(
                    f"PolicyAugment transforms images only; a {type(item).__name__} in the sample "
                    "would not follow its geometric ops"
                )

    def make_params(self, flat_inputs) -> dict:
        return {"seed": int(torch.randint(0, 2**62, (), dtype=torch.int64))}

    def transform(self, inpt, params: dict):
        rng = np.random.default_rng(params["seed"])
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode not in ("L", "RGB"):
                raise ValueError(f"PIL images must be mode 'L' or 'RGB', got {inpt.mode!r}")
            pixels = np.asarray(inpt)
            batch = torch.from_numpy(pixels.reshape(1, *pixels.shape[:2], -1).copy())
            result = self._apply(batch, rng)[0].permute(1, 2, 0).numpy()
            return PIL.Image.fromarray(result[..., 0] if inpt.mode == "L" else result, mode=inpt.mode)
        if inpt.dtype != torch.uint8 or inpt.dim() not in (3, 4) or inpt.shape[-3] not in (1, 3):
            raise ValueError(
                f"tensors must be uint8 [C, H, W] or [B, C, H, W] with C = 1 or 3, got {inpt.dtype} {tuple(inpt.shape)}"
            )
        single = inpt.dim() == 3
        batch = inpt.unsqueeze(0) if single else inpt
        channels_last = (
            not single and batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
        )
        out = self._apply(batch.permute(0, 2, 3, 1).contiguous(), rng)
        out = out.contiguous(memory_format=torch.channels_last) if channels_last else out.contiguous()
        out = out[0] if single else out
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    def sample(self, n: int, rng: np.random.Generator) -> PolicyParams:
        """Parameters for ``n`` images: a uniformly chosen current policy per image (one
        sampler: all from it), then its own sub-policy."""
        if len(self.samplers) == 1:
            params = sample_policies(self.samplers, n, rng)
        else:
            spaces = {s.space for s in self.samplers}
            if len(spaces) != 1:
                raise ValueError("a schedule epoch's policies must share one search space")
            which = rng.integers(0, len(self.samplers), size=n)
            k = max(s.n_ops for s in self.samplers)
            op, bins = np.full((n, k), -1), np.zeros((n, k), np.int64)
            for m, sampler in enumerate(self.samplers):
                rows = np.flatnonzero(which == m)
                if len(rows):
                    chosen_op, chosen_bin = sampler.choose(len(rows), rng)
                    op[rows, : chosen_op.shape[1]], bins[rows, : chosen_op.shape[1]] = chosen_op, chosen_bin
            params = complete(op, bins, spaces.pop(), rng, policy=which)
        return params if self.magnitude_scale == 1 else params.scaled(self.magnitude_scale)

    def _apply(self, nhwc: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        n, _height, _width, _channels = nhwc.shape
        return self._stage(nhwc.device, n).apply(nhwc, self.sample(n, rng), _UINT8)

    def _stage(self, device: torch.device, n: int):
        """The preferred available backend on the images' device among those whose stage
        takes any image size (images here come in every size): the fused kernels on a GPU;
        on the CPU the native stage where a compiler is, else the reference."""
        where = "gpu" if device.type == "cuda" else "cpu"
        try:
            backend = default_stage(where, any_size=True).name
        except RuntimeError as error:
            raise RuntimeError(f"PolicyAugment on {device.type.upper()} tensors: {error}") from None
        if backend not in self._stages:
            self._stages[backend] = make_stage(backend, where, max_batch=n, height=1, width=1, fill=self.fill)
        return self._stages[backend]

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_stages"] = {}  # stages hold compiled code and pipelines: rebuilt where unpickled
        return state

    def extra_repr(self) -> str:
        sampler = self.samplers[0]
        what = (
            f"schedule of {len(self.schedule)} epochs, epoch {self.epoch}"
            if self.schedule is not None
            else f"Policy[{sampler.space.name}] of {len(sampler.sub_policies)} sub-policies"
            if hasattr(sampler, "sub_policies")
            else repr(sampler)
        )
        return f"{what}, fill={self.fill}" + (
            f", magnitude_scale={self.magnitude_scale}" if self.magnitude_scale != 1 else ""
        )


__all__ = ["PolicyAugment"]
