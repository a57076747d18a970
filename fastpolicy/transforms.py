"""``PolicyAugment``: a learned or standard policy as a torchvision v2 transform.

    from torchvision.transforms import v2
    from fastpolicy.transforms import PolicyAugment

    train = v2.Compose([v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(),
                        PolicyAugment("runs/adversarial-…/schedule.json"),   # or "autoaugment", a Policy, …
                        v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

A drop-in for torchvision's ``AutoAugment``, ``RandAugment`` and ``TrivialAugmentWide``: it
takes their arguments (``PolicyAugment(AutoAugmentPolicy.CIFAR10)``,
``PolicyAugment("randaugment", num_ops=3, magnitude=5)``, ``interpolation``, ``fill``) and
their inputs (PIL images, uint8 or float tensors ``[..., C, H, W]``, ``tv_tensors.Image`` and
``tv_tensors.Video``). Each image gets its own sub-policy (each video one, across its frames).
On the CPU the ops run on PIL images (the ``"pil"`` stage: PIL's own operations, table ops
over the image's own memory, the slowest ops as one compiled call each; a PIL image is never
converted); CUDA batches go through the fused kernels. Both equal the registry's reference
pixel for pixel. Randomness comes from torch's global generator, so ``torch.manual_seed``
makes a run reproducible and every ``DataLoader`` worker draws its own stream — or from the
``generator=`` given (a CPU ``torch.Generator``), which no other code draws from: equal
generators give equal outputs, in any process (in DataLoader workers each worker reseeds its
copy from the generator's seed and the worker's seed, so workers and epochs draw different
streams, reproducibly under the same DataLoader seed).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.functional import pil_modes_mapping
from torchvision.transforms.v2 import AutoAugmentPolicy, InterpolationMode
from torchvision.transforms.v2.functional import is_pure_tensor

from . import augmix, sample_native
from .backends import pil_pixels
from .backends.pil_stage import Op, PilStage, sample_ops
from .backends.stage import OutputSpec, default_stage, make_stage
from .params import PolicyParams
from .policies import RandAugment, TrivialAugmentWide, autoaugment, resolve
from .reference import geometry
from .reference.geometry import FILL
from .registry import OP_NAMES, OPS
from .sampling import SubPolicyTables, sample_mixture, sample_policies, value_tables
from .schedule import PolicySchedule
from .spaces import STANDARD_BINS

_UINT8 = OutputSpec("uint8", "nchw")
_PIL_MODES = ("L", "RGB")
_PAIRING = OPS["SamplePairing"].id
_ONE_TENSOR = (torch.Tensor, tv_tensors.Image, tv_tensors.Video)
_SPATIAL_TYPES = (tv_tensors.BoundingBoxes, tv_tensors.Mask, tv_tensors.KeyPoints)
_SPATIAL = _SPATIAL_TYPES
"""What follows an image's geometric ops: boxes (every format), masks, key points."""
_IMAGES = (PIL.Image.Image, tv_tensors.Image, tv_tensors.Video)
_MASK_FILL = 0
"""What a mask takes where a geometric op moves in pixels from outside the image."""
_PCG_INCREMENT = 0x5851F42D4C957F2D14057B7EF767814F
"""The PCG64 stream (an odd increment) of the transform's NumPy generators; their states come
from torch's generator, call by call."""
_STANDARD_FILL = 0
"""The fill of the standard policies when none is given: torchvision's (black)."""


class PolicyAugment(v2.Transform):
    """Apply a policy to images, a sub-policy per image (per video).

    Args:
        policy: a :class:`~fastpolicy.policy.Policy`, an
            :class:`~fastpolicy.distribution.AWSDistribution`, a
            :class:`~fastpolicy.schedule.PolicySchedule` (each image picks one of the current
            epoch's policies uniformly; see :meth:`set_epoch`), a standard policy of
            :mod:`fastpolicy.policies` or its name (``"autoaugment"``,
            ``"autoaugment:cifar10"``, ``"randaugment"``, ``"trivialaugment_wide"``,
            ``"augmix"``: each image its own chains and mix, :mod:`fastpolicy.augmix`), a
            torchvision ``AutoAugmentPolicy`` (that AutoAugment policy), or the path of any of
            their JSON files (what ``fastpolicy search`` writes).
        interpolation: torchvision's: the geometric ops' resampling. ``"nearest"`` (the
            default, AutoAugment's, the only one on CUDA) equals the reference; on the CPU
            ``"bilinear"`` and ``"bicubic"`` are PIL's filters.
        fill: torchvision's: what geometric ops move in from outside the image, in the
            image's value range (0..255; 0..1 for float images): None (the default of the
            policy's kind: 0 for the standard policies, torchvision's; 128 for learned
            policies, AutoAugment's grey that the searches use), a number, one per channel,
            or a dict from input type (``tv_tensors.Image``, ``PIL.Image.Image``,
            ``torch.Tensor``, ``"others"``) to one of those.
        num_ops, magnitude, num_magnitude_bins: torchvision's, for ``"randaugment"``
            (all three) and ``"trivialaugment_wide"`` (``num_magnitude_bins``).
        magnitude_scale: values moved to ``identity + scale · (value − identity)`` (1: as
            sampled; see :meth:`~fastpolicy.params.PolicyParams.scaled`).

    Input: a PIL image (mode ``L`` or ``RGB``), a tensor ``[..., C, H, W]`` (C = 1 or 3, uint8,
    or float in [0, 1]; any leading dims, each image its own sub-policy; an empty batch comes
    back empty), a ``tv_tensors.Image``, or a ``tv_tensors.Video`` ``[..., T, C, H, W]`` (one
    sub-policy per video, applied to each of its frames). The output has the input's type,
    dtype, device, shape and memory layout; the input is not modified. uint8 and PIL inputs
    equal the reference pixel for pixel. Float images are quantized to uint8 levels for the
    ops (``v2.ToDtype(torch.uint8, scale=True)``; float16 and bfloat16 through float32, so 1.0
    stays 1.0) and come back as ``level / 255`` in their dtype; values outside [0, 1] (NaN
    included) and tensors that require grad are refused (the ops are not differentiable);
    an image none of whose ops applied, or of zero size, comes back unchanged. A single image's
    SamplePairing partner is itself; a batch's is another image of it.

    Detection and segmentation samples (a dict, or ``(image, target)``, as torchvision v2 passes
    them): ``tv_tensors.BoundingBoxes`` (every format, rotated ones included),
    ``tv_tensors.KeyPoints`` and ``tv_tensors.Mask`` beside one image (or one video) follow its
    geometric ops — each box's corners moved by the image's own matrix, the box around them
    taken and clamped (torchvision's kernel, the boxes' ``clamping_mode``); masks warped with
    the image's nearest pixels and fill 0, in any dtype. Colour ops, Cutout and SamplePairing
    leave them as they are. Other entries (labels) pass through; a second image, a batch of
    images with boxes or masks, or a mask of another size is refused.
    """

    _transformed_types = (is_pure_tensor, tv_tensors.Image, tv_tensors.Video, PIL.Image.Image, *_SPATIAL_TYPES)

    def __init__(
        self,
        policy,
        *,
        interpolation: str | InterpolationMode | int = InterpolationMode.NEAREST,
        fill=None,
        num_ops: int | None = None,
        magnitude: int | None = None,
        num_magnitude_bins: int | None = None,
        magnitude_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (on the CPU), got {type(generator).__name__}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")
        self.generator = generator
        self._worker_seeded: int | None = None
        self._thread = threading.local()  # each thread's NumPy generator (_rng)
        policy = self._standard(policy, num_ops, magnitude, num_magnitude_bins)
        if not 0 < magnitude_scale <= 1:
            raise ValueError(f"magnitude_scale must be in (0, 1], got {magnitude_scale!r}")
        self.schedule = policy if isinstance(policy, PolicySchedule) else None
        if self.schedule is not None and len(self.schedule) == 0:
            raise ValueError("the policy schedule is empty")
        self.interpolation = _interpolation_mode(interpolation)
        if self.interpolation not in (InterpolationMode.NEAREST, InterpolationMode.BILINEAR, InterpolationMode.BICUBIC):
            raise ValueError(f"interpolation must be nearest, bilinear or bicubic, got {interpolation!r}")
        self.fill = fill
        self._fill = _fill_by_type(fill)
        self.magnitude_scale = float(magnitude_scale)
        # The schedule's epoch lives in shared memory: DataLoader workers (persistent ones too)
        # hold copies of this transform, and read the epoch set_epoch writes in the parent.
        self._shared_epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._applied_epoch = 0
        self._use(list(self.schedule[0]) if self.schedule is not None else [policy])
        self._stages: dict = {}

    @staticmethod
    def _standard(policy, num_ops, magnitude, num_magnitude_bins):
        """The sampler ``policy`` names, with torchvision's constructor arguments."""
        if isinstance(policy, AutoAugmentPolicy):
            policy = autoaugment(policy.value)
        extra = {
            k: v
            for k, v in (("num_ops", num_ops), ("magnitude", magnitude), ("num_magnitude_bins", num_magnitude_bins))
            if v is not None
        }
        if not extra:
            return resolve(policy)
        if policy == "randaugment":
            return RandAugment(**extra)
        if policy == "trivialaugment_wide" and set(extra) == {"num_magnitude_bins"}:
            return TrivialAugmentWide(**extra)
        raise ValueError(
            f"{', '.join(extra)} apply to 'randaugment' (num_ops, magnitude, num_magnitude_bins) and "
            f"'trivialaugment_wide' (num_magnitude_bins), not to {policy!r}"
        )

    def _use(self, samplers: list) -> None:
        self.samplers = samplers
        learned = any(getattr(s, "space", None) is None or s.space.name not in STANDARD_BINS for s in samplers)
        own = {getattr(s, "default_fill", None) for s in samplers}  # a timm string's: timm's fill
        fill = own.pop() if len(own) == 1 else None
        self.default_fill: int = (
            int(fill) if fill is not None else FILL if learned or self.schedule is not None else _STANDARD_FILL
        )
        mixes = {bool(getattr(s, "mixes", False)) for s in samplers}
        if len(mixes) > 1:
            raise ValueError("AugMix cannot share a schedule epoch with other policies")
        self._mixes = mixes.pop()
        tables = getattr(samplers[0], "sub_policy_tables", None)
        single = len(samplers) == 1 and isinstance(tables, SubPolicyTables) and self.magnitude_scale == 1
        # one Policy: its draws straight from the compiled sampler into the ops (draw()); a new token
        # per policy, so no thread keeps a reused draw of an earlier one
        self._tables = (tables, samplers[0].space, object()) if single else None

    @property
    def epoch(self) -> int:
        """The schedule's epoch in use (0 without a schedule)."""
        return int(self._shared_epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule's policies of ``epoch`` (epochs past its end: its last epoch's); with
        any other policy nothing changes (the epoch is only recorded), so a training loop may
        call it whatever policy it was given.

        It reaches ``DataLoader`` workers too, persistent ones included: the epoch is kept in
        shared memory, and every copy of the transform switches at its next call."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer ≥ 0, got {epoch!r}")
        self._shared_epoch.fill_(epoch)
        self._follow_epoch()

    def _follow_epoch(self) -> None:
        """Switch to the shared epoch's policies if another copy (or this one) changed it."""
        epoch = int(self._shared_epoch)
        if self.schedule is not None and epoch != self._applied_epoch:
            self._use(list(self.schedule[epoch]))  # past its end: the last epoch's
            self._applied_epoch = epoch

    def forward(self, *inputs):
        if len(inputs) == 1 and (isinstance(inputs[0], PIL.Image.Image) or type(inputs[0]) in _ONE_TENSOR):
            return self.transform(inputs[0], self.make_params(inputs))  # the common call, without pytrees
        return super().forward(*inputs)

    def check_inputs(self, flat_inputs) -> None:
        """A sample holds one image or video; boxes, masks and key points go with one image
        (or one video) of their size, since they follow that unit's ops."""
        spatial = [item for item in flat_inputs if isinstance(item, _SPATIAL)]
        if not spatial:
            return
        if self._mixes:
            raise TypeError(
                f"AugMix mixes chains that move the image each its own way: a {type(spatial[0]).__name__} "
                "cannot follow them (torchvision's AugMix takes images and videos only)"
            )
        images = [item for item in flat_inputs if isinstance(item, _IMAGES)]
        if not images:
            raise TypeError(
                f"PolicyAugment draws the ops of an image: a sample with a {type(spatial[0]).__name__} "
                "needs its image (a PIL image, tv_tensors.Image or tv_tensors.Video)"
            )
        if len(images) > 1 or len(_units(images[0])) != 1:
            raise ValueError(
                "boxes, masks and key points follow the ops of one image or one video: the sample holds "
                + (f"{len(images)} images" if len(images) > 1 else f"a batch of {len(_units(images[0]))}")
            )
        size = _spatial_size(images[0])
        for item in spatial:
            theirs = _spatial_size(item)
            if theirs != size:
                raise ValueError(
                    f"a {type(item).__name__} of size {theirs[0]}x{theirs[1]} cannot follow an image of "
                    f"{size[0]}x{size[1]} (height x width)"
                )

    def make_params(self, flat_inputs) -> dict:
        """The ops of each image (each video) of the one image or video in ``flat_inputs``:
        ``{"ops": [ops of unit 0, …]}``, a unit's ops a list of
        :data:`~fastpolicy.backends.pil_stage.Op`. Boxes, masks and key points beside it
        take its ops (:meth:`check_inputs`)."""
        images = [item for item in flat_inputs if not isinstance(item, _SPATIAL)]
        if len(images) > 1:
            raise TypeError(f"PolicyAugment transforms one image or video per sample, got {len(images)}")
        n = len(_units(images[0])) if images else 0
        return self.draw_mixed(n) if self._mixes else {"ops": self.draw(n)}

    def draw_mixed(self, n: int) -> dict:
        """AugMix's parameters of ``n`` images (:mod:`fastpolicy.augmix`): ``{"chains": [ops of
        each unit, per chain], "mix": float32[n, W + 1], "ops": ops after the mix, per unit}``."""
        self._follow_epoch()
        if n == 0:
            return {"ops": [], "chains": [], "mix": np.zeros((0, 2), np.float32)}
        params = self.sample(n, self._rng())
        after = params.after_mix()
        return {
            "chains": [[sample_ops(chain, i) for i in range(n)] for chain in params.chains()],
            "mix": params.mix,
            "mix_blend": params.mix_blend,
            "ops": [sample_ops(after, i) if after is not None else [] for i in range(n)],
        }

    def draw(self, n: int) -> list[list[Op]]:
        """The applied ops of ``n`` images: a seed from the generator (torch's global one by
        default), then the one sampler, the loader's (:meth:`sample`; for one Policy its compiled
        draws read straight into the ops, the same values)."""
        self._follow_epoch()
        if n == 0:
            return []
        rng = self._rng()
        reused = self._reused_draw(n)
        drawn = reused(rng) if reused is not None else None
        if drawn is not None:
            ops, values, centers, partners = drawn
            return [
                [Op(o, v, c[0], c[1], p) for o, v, c, p in zip(ops[i], values[i], centers[i], partners[i]) if o >= 0]
                for i in range(n)
            ]
        params = self.sample(n, rng)
        return [sample_ops(params, i) for i in range(n)]

    def _reused_draw(self, n: int):
        """This thread's :class:`~fastpolicy.sample_native.ReusedDraw` of the one current Policy
        for ``n`` images, or None (another kind of policy, several, a magnitude scale)."""
        if self._tables is None:
            return None
        tables, space, token = self._tables
        thread = self._thread_state()
        draws = thread.__dict__.setdefault("draws", {})
        key = (token, n, sample_native.generation())  # a registered op: values of the grown registry
        if key not in draws:
            if len(draws) >= 16:
                draws.clear()
            draws[key] = sample_native.ReusedDraw((tables,), value_tables(space), n, self.samplers[0].n_ops)
        return draws[key]

    def _thread_state(self) -> threading.local:
        thread = self.__dict__.get("_thread")
        if thread is None:
            thread = self.__dict__["_thread"] = threading.local()
        return thread

    def _rng(self) -> np.random.Generator:
        """A NumPy generator whose PCG64 state is drawn from the transform's generator (torch's
        global one by default): 124 random bits, set into this thread's generator (no SeedSequence
        per call)."""
        high, low = torch.randint(0, 2**62, (2,), dtype=torch.int64, generator=self._generator()).tolist()
        thread = self._thread_state()
        rng = getattr(thread, "rng", None)
        if rng is None:
            rng = thread.rng = np.random.Generator(np.random.PCG64(0))
        rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": (high << 64) | low, "inc": _PCG_INCREMENT},
            "has_uint32": 0,
            "uinteger": 0,
        }
        return rng

    def _generator(self) -> torch.Generator | None:
        """The ``generator`` given (None: torch's global one). In a DataLoader worker each copy
        of the transform holds the same state, so each worker reseeds its copy once, from the
        generator's seed and the worker's seed (the DataLoader's base seed, new each epoch, plus
        its id): workers and epochs draw different streams, and the same generator and
        DataLoader seed (``torch.manual_seed`` or its ``generator``) give the same outputs."""
        if self.generator is None:
            return None
        info = torch.utils.data.get_worker_info()
        if info is not None and self._worker_seeded != info.seed:
            # info.seed: the DataLoader's base seed (new each epoch, drawn from its generator or
            # torch's) plus the worker id: another stream per worker and per epoch
            self.generator.manual_seed((self.generator.initial_seed() * 1_000_003 + info.seed) % 2**63)
            self._worker_seeded = info.seed
        return self.generator

    def sample(self, n: int, rng: np.random.Generator) -> PolicyParams:
        """Parameters for ``n`` images by the one sampler (:func:`~fastpolicy.sampling.sample_policies`,
        the loader's): with one current policy all from it, with a schedule epoch's several each
        image from one of them drawn uniformly (:func:`~fastpolicy.sampling.sample_mixture`)."""
        self._follow_epoch()
        if len(self.samplers) == 1:
            params = sample_policies(self.samplers, n, rng)
        else:
            params = sample_mixture(self.samplers, n, rng)
        return params if self.magnitude_scale == 1 else params.scaled(self.magnitude_scale)

    def fill_levels(self, inpt) -> int | tuple[int, ...]:
        """The 0..255 fill level (or one per channel) for ``inpt``'s type (torchvision's
        ``fill`` lookup, then this policy's default)."""
        fill = self._fill.get(type(inpt), self._fill.get("others"))
        if fill is None:
            return self.default_fill
        floating = isinstance(inpt, torch.Tensor) and inpt.dtype.is_floating_point
        fill = fill if isinstance(fill, (list, tuple)) else [fill]
        levels = tuple(round(float(f) * 255) if floating else int(f) for f in fill)
        if any(not 0 <= level <= 255 for level in levels):
            raise ValueError(f"fill {fill!r} is outside the image's value range")
        return levels[0] if len(levels) == 1 else levels

    def transform(self, inpt, params: dict):
        ops = params["ops"]
        mixed = "mix" in params
        if isinstance(inpt, _SPATIAL):
            return _follow(inpt, ops[0] if ops else [])
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode not in _PIL_MODES:
                raise ValueError(f"PIL images must be mode 'L' or 'RGB', got {inpt.mode!r}")
            if mixed:  # AugMix: the chains and their mix on the image's levels
                levels = v2.functional.pil_to_tensor(inpt)[None]
                out = self._mixed(levels, params, self.fill_levels(inpt), 1, False)[0]
                return v2.functional.to_pil_image(out, mode=inpt.mode)
            return self._pil(self.fill_levels(inpt)).apply_ops(inpt, ops[0]) if ops[0] else inpt
        video = isinstance(inpt, tv_tensors.Video)
        if (
            not (inpt.dtype == torch.uint8 or inpt.dtype.is_floating_point)
            or inpt.dim() < (4 if video else 3)
            or inpt.shape[-3] not in (1, 3)
        ):
            what = "[..., T, C, H, W]" if video else "[..., C, H, W]"
            raise ValueError(
                f"tensors must be uint8 or float (in [0, 1]) {what} with C = 1 or 3, "
                f"got {inpt.dtype} {tuple(inpt.shape)}"
            )
        if inpt.requires_grad:
            raise ValueError(
                "PolicyAugment does not differentiate through its ops (they work on 0..255 levels): "
                "pass the image detached (image.detach()) or augment before the graph"
            )
        if (not any(ops) and not mixed) or inpt.numel() == 0:
            return inpt.clone()  # keeps a tv_tensor's type; an image of zero size stays as it is
        images = inpt.as_subclass(torch.Tensor) if type(inpt) is not torch.Tensor else inpt
        frames = images.shape[-4] if video else 1
        flat = images.reshape(-1, *images.shape[-3:])
        if flat.dtype.is_floating_point:
            inside = bool(((flat >= 0) & (flat <= 1)).all())  # NaN is outside too
            if not inside:
                raise ValueError(
                    f"float images must lie in [0, 1] (torchvision's convention for float images), got values "
                    f"in [{float(flat.nan_to_num(nan=float('inf')).min()):g}, "
                    f"{float(flat.nan_to_num(nan=float('-inf')).max()):g}]"
                    + (" and NaN" if bool(flat.isnan().any()) else "")
                    + "; scale them (v2.ToDtype(torch.float32, scale=True) on uint8) or clamp them first"
                )
        # half and bfloat16 through float32: 1.0 · 255 must not round to 256 (which wraps to 0)
        wide = flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat
        levels = v2.functional.to_dtype(wide, torch.uint8, scale=True) if flat.dtype.is_floating_point else flat
        per_image = [unit_ops for unit_ops in ops for _ in range(frames)]
        if mixed:
            out = self._mixed(levels, params, self.fill_levels(inpt), frames, video)
        elif inpt.device.type == "cuda":
            out = self._cuda(levels, per_image, self.fill_levels(inpt), video)
        else:
            out = self._cpu(levels, per_image, self.fill_levels(inpt), video)
        if flat.dtype.is_floating_point:
            applied = torch.tensor([mixed or bool(o) for o in per_image], dtype=torch.bool, device=flat.device)
            out = torch.where(applied[:, None, None, None], (out.to(wide.dtype) / 255).to(flat.dtype), flat)
        out = out.reshape(images.shape)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) else out

    def _mixed(self, levels: torch.Tensor, params: dict, fill, frames: int, video: bool) -> torch.Tensor:
        """uint8 [N, C, H, W]: AugMix's chains on ``levels`` (each unit's on each of its
        ``frames``), their mix (:func:`fastpolicy.augmix.mix`), then the ops after the mix."""
        run = self._cuda if levels.device.type == "cuda" else self._cpu

        def per_frame(unit_ops: list[list[Op]]) -> list[list[Op]]:
            return [ops for ops in unit_ops for _ in range(frames)]

        chains = [run(levels, per_frame(chain), fill, video) for chain in params["chains"]]
        out = augmix.mix(levels, chains, np.repeat(params["mix"], frames, axis=0), params.get("mix_blend", False))
        after = per_frame(params["ops"])
        return run(out, after, fill, video) if any(after) else out

    def _cpu(self, images: torch.Tensor, ops: list[list[Op]], fill, video: bool) -> torch.Tensor:
        """uint8 [N, C, H, W] with image i's ``ops`` applied through PIL (partners: the batch,
        or each frame itself in a video)."""
        stage = self._pil(fill)
        out = torch.empty_like(images)
        pairs = not video and any(op.op == _PAIRING for image_ops in ops for op in image_ops)
        pils = [_to_pil(image) for image in images] if pairs else []
        for i, image_ops in enumerate(ops):
            if not image_ops:
                out[i] = images[i]
                continue
            pil = pils[i] if pils else _to_pil(images[i])
            _write(stage.apply_ops(pil, image_ops, pils or None), out[i])
        return out

    def _cuda(self, images: torch.Tensor, ops: list[list[Op]], fill, video: bool) -> torch.Tensor:
        """uint8 [N, C, H, W] on the GPU through the default CUDA stage (nearest, one fill level)."""
        if self.interpolation != InterpolationMode.NEAREST:
            raise ValueError(
                f"on CUDA tensors the geometric ops are nearest; interpolation={self.interpolation.value!r}"
            )
        if not isinstance(fill, int):
            if len(set(fill)) != 1:
                raise ValueError(f"on CUDA tensors fill is one level for every channel, got {fill!r}")
            fill = fill[0]
        n, k = len(ops), max((len(o) for o in ops), default=0)
        if n == 0 or k == 0:
            return images.clone()
        op, value = np.full((n, k), -1), np.zeros((n, k))
        center, partner = np.zeros((n, k, 2)), np.tile(np.arange(n)[:, None], (1, k))
        for i, image_ops in enumerate(ops):
            for slot, applied in enumerate(image_ops):
                op[i, slot], value[i, slot], center[i, slot] = applied.op, applied.value, (applied.cy, applied.cx)
                partner[i, slot] = i if video else applied.partner
        params = PolicyParams(op, np.full((n, k), -1), np.ones((n, k)), value, center, partner, np.zeros(n))
        nhwc = images.permute(0, 2, 3, 1).contiguous()
        out = self._gpu_stage(n, fill).apply(nhwc, params, _UINT8)
        return out.contiguous(memory_format=torch.channels_last) if _channels_last(images) else out

    def _pil(self, fill) -> PilStage:
        key = ("pil", fill, self.interpolation)
        if key not in self._stages:
            self._stages[key] = PilStage(fill, pil_modes_mapping[self.interpolation])
        return self._stages[key]

    def _gpu_stage(self, n: int, fill: int):
        """The preferred available GPU backend whose stage takes any image size."""
        try:
            backend = default_stage("gpu", any_size=True).name
        except RuntimeError as error:
            raise RuntimeError(f"PolicyAugment on CUDA tensors: {error}") from None
        key = (backend, fill)
        built = self._stages.get(key)
        if built is None or built[0] < n:  # built for batches of up to built[0] images
            built = self._stages[key] = (n, make_stage(backend, "gpu", max_batch=n, height=1, width=1, fill=fill))
        return built[1]

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_stages"] = {}  # stages hold compiled code and pipelines: rebuilt where unpickled
        state.pop("_thread", None)  # each process and thread makes its own (_rng)
        return state

    def extra_repr(self) -> str:
        sampler = self.samplers[0]
        past = self.schedule is not None and self.epoch >= len(self.schedule)
        what = (
            f"schedule of {len(self.schedule)} epochs, epoch {self.epoch}"
            + (f" (past its end: epoch {len(self.schedule) - 1}'s policies)" if past else "")
            + ("; call set_epoch(epoch) every epoch" if self.epoch == 0 else "")
            if self.schedule is not None
            else f"Policy[{sampler.space.name}] of {len(sampler.sub_policies)} sub-policies"
            if hasattr(sampler, "sub_policies")
            else repr(sampler)
        )
        fill = f"fill={self.fill!r}" if self.fill is not None else f"fill=None ({self.default_fill})"
        return f"{what}, {fill}, interpolation={self.interpolation.value}" + (
            f", magnitude_scale={self.magnitude_scale}" if self.magnitude_scale != 1 else ""
        )


def _units(inpt) -> range:
    """The units that draw a sub-policy each: a PIL image 1; a tensor ``[..., C, H, W]`` its
    images; a video ``[..., T, C, H, W]`` its videos."""
    if isinstance(inpt, PIL.Image.Image):
        return range(1)
    lead = inpt.shape[: -4 if isinstance(inpt, tv_tensors.Video) else -3]
    return range(math.prod(lead))


def _spatial_size(item) -> tuple[int, int]:
    """(height, width) of an image, video, mask, or the canvas of boxes and key points."""
    if isinstance(item, PIL.Image.Image):
        return item.height, item.width
    if isinstance(item, (tv_tensors.BoundingBoxes, tv_tensors.KeyPoints)):
        return tuple(item.canvas_size)
    return tuple(item.shape[-2:])


def _follow(item, ops: list[Op]):
    """Boxes, key points or a mask moved by the geometric ops (registry kind ``affine``) among
    one image's applied ``ops``, in order; the other ops leave them as they are.

    A geometric op is its reference's PIL matrix (output point → input point, in continuous
    pixel coordinates); a translation moves by the whole pixels PIL moves the image by
    (``floor(shift + ½)``). Boxes and key points go through torchvision's own kernel for such a
    matrix (``F.perspective`` with it as coefficients): each box's corners moved, the box
    around them taken (rotated formats: the rotated box), clamped as the boxes' own
    ``clamping_mode`` says, after each op as the image loses what leaves it. A mask takes the
    reference warp (nearest, :data:`_MASK_FILL` outside), so its pixels land exactly where the
    image's do."""
    height, width = _spatial_size(item)
    out = item
    for op in ops:
        spec = OPS[OP_NAMES[op.op]]
        if spec.kind != "affine":
            continue
        matrix = spec.reference.matrix(op.value, height, width)  # type: ignore[attr-defined]  # affine ops'
        if geometry.is_translation(matrix) and matrix[0] == matrix[4] == 1:  # a shift: whole pixels, floor(c + ½)
            a, b, c, d, e, f = matrix
            matrix = (a, b, math.floor(c + 0.5), d, e, math.floor(f + 0.5))
        if isinstance(out, tv_tensors.Mask):
            out = _warp_mask(out, matrix)
        else:
            coefficients = [float(v) for v in matrix] + [0.0, 0.0]
            out = v2.functional.perspective(out, None, None, coefficients=coefficients)
    return out if out is not item else item.clone()


def _warp_mask(mask: tv_tensors.Mask, matrix) -> tv_tensors.Mask:
    """``mask`` [..., H, W] (any dtype, any device) warped by ``matrix`` exactly as the
    reference warps an image (PIL's nearest pixels), :data:`_MASK_FILL` outside."""
    height, width = mask.shape[-2:]
    rows, cols = geometry.source_indices(matrix, height, width)
    inside = torch.from_numpy(rows >= 0).to(mask.device)
    row_index = torch.from_numpy(np.maximum(rows, 0)).to(mask.device)
    col_index = torch.from_numpy(np.maximum(cols, 0)).to(mask.device)
    plain = mask.as_subclass(torch.Tensor)
    moved = plain[..., row_index, col_index]
    moved = torch.where(inside, moved, torch.full((), _MASK_FILL, dtype=plain.dtype, device=plain.device))
    return tv_tensors.wrap(moved, like=mask)


def _channels_last(images: torch.Tensor) -> bool:
    return images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()


def _to_pil(image: torch.Tensor) -> PIL.Image.Image:
    """uint8 [C, H, W] (CPU) as a PIL image (mode L or RGB): written into the image's own memory
    (:mod:`~fastpolicy.backends.pil_pixels`), or else without a transposing copy where it is
    planar: its planes are merged by PIL."""
    made = pil_pixels.from_planes(image)
    if made is not None:
        return made
    channels, height, width = image.shape
    hwc = image.permute(1, 2, 0)
    if hwc.is_contiguous():
        pixels = hwc.numpy()
        return PIL.Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    planes = [
        PIL.Image.frombuffer("L", (width, height), image[c].contiguous().numpy(), "raw", "L", 0, 1)
        for c in range(channels)
    ]
    return planes[0] if channels == 1 else PIL.Image.merge("RGB", planes)


def _write(img: PIL.Image.Image, out: torch.Tensor) -> None:
    """Copy PIL image ``img`` into uint8 [C, H, W] ``out`` (either memory layout)."""
    if pil_pixels.to_planes(img, out):
        return
    hwc = out.permute(1, 2, 0)
    if hwc.is_contiguous() or img.mode == "L":
        hwc.numpy()[...] = np.asarray(img).reshape(hwc.shape)
        return
    for c, band in enumerate(img.split()):
        out[c].numpy()[...] = np.asarray(band)


__all__ = ["PolicyAugment"]


def _interpolation_mode(interpolation) -> InterpolationMode:
    """``interpolation`` as an :class:`InterpolationMode`: a mode, its name (``"bilinear"``) or a
    Pillow constant (0 nearest, 2 bilinear, 3 bicubic …), as torchvision's transforms take it."""
    if isinstance(interpolation, InterpolationMode):
        return interpolation
    if isinstance(interpolation, str):
        try:
            return InterpolationMode(interpolation.lower())
        except ValueError:
            names = [m.value for m in InterpolationMode]
            raise ValueError(f"interpolation {interpolation!r} is none of {names}") from None
    if isinstance(interpolation, int) and not isinstance(interpolation, bool):
        modes = {code: mode for mode, code in reversed(pil_modes_mapping.items())}  # 0: NEAREST, not NEAREST_EXACT
        if interpolation in modes:
            return modes[interpolation]
    raise ValueError(
        f"interpolation must be an InterpolationMode, its name or a Pillow constant, got {interpolation!r}"
    )


def _fill_by_type(fill) -> dict:
    """torchvision's ``fill`` argument as ``{input type or "others": fill}``: a number, a sequence
    (one per channel, as floats) or None for every type, or a dict by type. TypeError otherwise."""

    def one(value):
        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float)) for v in value):
            return [float(v) for v in value]
        raise TypeError(f"fill must be a number, a tuple or list of numbers, None or a dict of them, got {value!r}")

    if isinstance(fill, dict):
        return {kind: one(value) for kind, value in fill.items()}
    return {"others": one(fill)}
