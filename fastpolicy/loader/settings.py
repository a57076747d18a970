"""The loader's settings, grouped by what they decide; each group checks itself when built.

* :class:`Sharding` — which part of the data this process reads;
* :class:`Augment` — what happens to every copy: baseline, policy slots, fill, magnitude
  scale, the final Cutout, and the backend that applies the policies;
* :class:`FileChecks` — which files are refused before DALI reads them;
* :class:`Pipeline` — how batches are made: seed, order, threads, prefetching;
* :class:`Output` — what a batch holds: element type, memory layout, normalization.

All are frozen; pass them by keyword (``PolicyDALILoader(root, ..., pipeline=Pipeline(seed=3))``).
Sizes and counts of the loader itself (batch size, M, image size) are checked by
:func:`check_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.stage import OutputSpec
from ..data.files import DEFAULT_MAX_PIXELS, VERIFY
from ..reference.geometry import FILL, check_fill
from .dali_priority import resolve_priority
from .policy_set import FinalSlot

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet's per-channel mean and std in [0, 1] units: the default normalization."""

OUTPUTS = ("float", "float32", "float16", "bfloat16", "uint8")
"""Output element types of the loader: the stage protocol's dtypes and ``"float"`` (float32)."""

MAX_IMAGE_SIZE = 8192
"""Largest side S of the square crops, in pixels."""

MAX_BATCH_BYTES = 2**33
"""Largest enlarged batch M·N·H·W·C of the source, in bytes (8 GiB; a float32 output is 4× that)."""

MAX_SLOTS = 16
"""Most policy op slots per sample."""

MAX_SEED = 2**53
"""Largest seed (the source's DALI seed, ``seed·1009 + shard + 1``, stays within int64)."""


BASELINES = ("imagenet", "center", "pad_crop", "none")
"""Baseline augmentations, one per copy before the policy:

* ``imagenet``: random-resized-crop to S×S (scale 0.08–1, ratio 3/4–4/3) and a random
  horizontal flip;
* ``center``: resize the shorter side to S·256/224 and take the central S×S (validation);
* ``pad_crop``: pad 4 px (zeros), random crop back to the input size, random flip (CIFAR);
* ``none``: images as they are (they must share one size).
"""


def check_count(value, what: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; ValueError naming ``what``, the value and the limits
    otherwise (bools and fractions are refused, not truncated)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        limits = f"≥ {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{what} must be {limits}, got {value}")
    return int(value)


def _check_choice(value, what: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, got {value!r}")


def _check_flag(value, what: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")


def check_sizes(batch_size, M, height, width, channels: int) -> tuple[int, int]:
    """``(batch_size, M)`` as ints, checked with the crop size: N ≥ 1, M ≥ 1, each side in
    [1, :data:`MAX_IMAGE_SIZE`], and the enlarged batch M·N·H·W·C at most
    :data:`MAX_BATCH_BYTES` bytes. ValueError names the value and its limits."""
    batch_size = check_count(batch_size, "batch_size")
    M = check_count(M, "M")
    for side, what in ((height, "image height"), (width, "image width")):
        check_count(side, f"{what} (image_size)", 1, MAX_IMAGE_SIZE)
    total = M * batch_size * int(height) * int(width) * channels
    if total > MAX_BATCH_BYTES:
        raise ValueError(
            f"an enlarged batch of M={M} × batch_size={batch_size} × {height}×{width}×{channels} is "
            f"{total} bytes, over the limit of {MAX_BATCH_BYTES} (MAX_BATCH_BYTES); lower M, batch_size or image_size"
        )
    return batch_size, M


@dataclass(frozen=True)
class Sharding:
    """This process's part of the data: shard ``shard_id`` of ``num_shards`` (one epoch =
    the dataset once over all shards)."""

    shard_id: int = 0
    num_shards: int = 1

    def __post_init__(self):
        check_count(self.num_shards, "num_shards")
        check_count(self.shard_id, "shard_id", 0)
        if self.shard_id >= self.num_shards:
            raise ValueError(f"shard_id {self.shard_id} outside [0, {self.num_shards})")

    def size(self, n: int) -> int:
        """Images of ``n`` this shard holds (shards differ by at most one)."""
        return n * (self.shard_id + 1) // self.num_shards - n * self.shard_id // self.num_shards

    def __str__(self) -> str:
        return f"shard {self.shard_id} of {self.num_shards}"


@dataclass(frozen=True)
class Augment:
    """What happens to every copy.

    Attributes:
        baseline: see :data:`BASELINES`; None: ``"imagenet"`` for
            files, ``"pad_crop"`` for arrays.
        slots: op slots per sample the policies fill (2 for AutoAugment sub-policies), at
            most :data:`MAX_SLOTS`.
        fill: the 0..255 level geometric ops fill with (AutoAugment's grey 128 by default;
            0 suits dark backgrounds such as Fashion-MNIST's).
        magnitude_scale: in (0, 1]; every sampled value is moved to ``identity + scale ·
            (value − identity)`` of its op (1: the search space's full range). The scaled
            values are what ``Batch.params`` reports.
        cutout: side in pixels of a Cutout square applied to every copy *after* its policy
            (AutoAugment's CIFAR pipeline: 16), with or without policies; 0: none. It is
            registry op Cutout (grey 128) in a final op slot, so ``Batch.params`` shows it.
        backend: how policies are applied: ``"cupy"`` (the fused CUDA kernels; GPU only),
            ``"native"`` (the same kernel sources as a fast CPU stage), ``"dali"`` (DALI
            operators), ``"emulated"`` (the CUDA kernels on the CPU through the host
            emulator; slow, for checking) or ``"numpy"`` (the reference; slow). None: the
            fastest here (:func:`~fastpolicy.backends.stage.resolve_backend`).
    """

    baseline: str | None = None
    slots: int = 2
    fill: int = FILL
    magnitude_scale: float = 1.0
    cutout: int = 0
    backend: str | None = None

    def __post_init__(self):
        if self.baseline is not None:
            _check_choice(self.baseline, "baseline", BASELINES)
        check_count(self.slots, "slots", 1, MAX_SLOTS)
        check_fill(self.fill)
        scale = self.magnitude_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)) or not 0 < scale <= 1:
            raise ValueError(f"magnitude_scale must be in (0, 1], got {scale!r}")
        if isinstance(self.cutout, bool) or not isinstance(self.cutout, (int, np.integer)) or self.cutout < 0:
            raise ValueError(f"cutout must be a side in pixels ≥ 0, got {self.cutout!r}")

    def final_slots(self, side: int) -> tuple[FinalSlot, ...]:
        """The slots every copy gets after its policy's, for crops whose shorter side is
        ``side`` px: Cutout of :attr:`cutout` px (none for 0)."""
        return (FinalSlot("Cutout", self.cutout / side),) if self.cutout else ()


@dataclass(frozen=True)
class FileChecks:
    """File checks before DALI reads (see :func:`~fastpolicy.data.files.check_files`).

    Attributes:
        verify: ``"header"`` (signature, end marker, dimensions), ``"decode"`` (also a full
            PIL decode) or ``"none"``.
        on_bad: ``"raise"`` (naming the bad files) or ``"skip"`` (drop them).
        max_pixels: refuse images with more pixels (None: no limit; default PIL's
            ``MAX_IMAGE_PIXELS``).
    """

    verify: str = "header"
    on_bad: str = "raise"
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        _check_choice(self.verify, "verify", tuple(VERIFY))
        _check_choice(self.on_bad, "on_bad", ("raise", "skip"))
        if self.max_pixels is not None:
            check_count(self.max_pixels, "max_pixels")


@dataclass(frozen=True)
class Pipeline:
    """How batches are made.

    Attributes:
        seed: seeds shuffling, baseline randomness and policy sampling; in [0, 2⁵³].
        shuffle: reshuffle every epoch.
        drop_last: drop the shard's last partial batch (else yield it, smaller).
        num_threads: DALI CPU threads per pipeline (≥ 1).
        prefetch: 1: prepare the next batch (source output, sampling, upload, policy
            stage) on a background thread, on a side CUDA stream on a GPU, while the
            current one trains; 0: on demand. Both yield the same batches. None: 1 on a
            GPU, 0 on the CPU.
        dali_priority: ``"idle"``: DALI's threads run under ``SCHED_IDLE`` (Linux;
            :mod:`.dali_priority`, with its caveats), so the training thread, the sampler and
            the policy stage take a core first whenever they want one and DALI decodes ahead
            on the time left; ``"normal"``: as the process's; None: ``"idle"`` on the CPU,
            ``"normal"`` on a GPU.
    """

    seed: int = 0
    shuffle: bool = True
    drop_last: bool = True
    num_threads: int = 2
    prefetch: int | None = None
    dali_priority: str | None = None

    def __post_init__(self):
        check_count(self.seed, "seed", 0, MAX_SEED)
        _check_flag(self.shuffle, "shuffle")
        _check_flag(self.drop_last, "drop_last")
        check_count(self.num_threads, "num_threads")
        if self.prefetch is not None and (isinstance(self.prefetch, bool) or self.prefetch not in (0, 1)):
            raise ValueError(f"prefetch must be 0, 1 or None (auto), got {self.prefetch!r}")
        resolve_priority(self.dali_priority, "cpu")  # refuses any other value, naming it


@dataclass(frozen=True)
class Output:
    """What a batch's images hold.

    Attributes:
        dtype: ``"float"`` or ``"float32"``, ``"float16"``, ``"bfloat16"`` (normalized), or
            ``"uint8"`` (pixels as they are).
        layout: ``"nchw"`` (contiguous) or ``"channels_last"`` (``torch.channels_last``
            memory, what a channels-last model consumes without a copy).
        mean, std: per-channel normalization in [0, 1] units; None: ImageNet's (files) or
            the arrays' own (:meth:`~fastpolicy.loader.PolicyDALILoader.from_arrays`, for
            ``dtype="float"``).
    """

    dtype: str = "float"
    layout: str = "nchw"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        _check_choice(self.dtype, "output", OUTPUTS)
        OutputSpec("uint8", self.layout)  # the layout's one check: the stage protocol's
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"give both mean and std or neither, got mean={self.mean} and std={self.std}")
        if self.mean is not None:
            object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
            object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def spec(self, channels: int) -> OutputSpec:
        """The stage's :class:`~fastpolicy.backends.stage.OutputSpec` for ``channels``: float32
        for ``"float"``; mean and std default to ImageNet's, averaged for one channel."""
        mean = IMAGENET_MEAN if self.mean is None else self.mean
        std = IMAGENET_STD if self.std is None else self.std
        if channels == 1 and len(mean) == 3:
            mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} values, got {mean} and {std}")
        dtype = "float32" if self.dtype == "float" else self.dtype
        return OutputSpec(dtype, self.layout, *((mean, std) if dtype != "uint8" else (None, None)))


def output_of(output: str | Output, layout: str | None) -> Output:
    """The :class:`Output` of the loader's ``output`` and ``layout`` arguments: a dtype name
    with an optional layout (default ``"nchw"``), or an :class:`Output` (then ``layout`` must
    be None or agree with it)."""
    if isinstance(output, Output):
        if layout is not None and layout != output.layout:
            raise ValueError(f"layout {layout!r} disagrees with output.layout {output.layout!r}; give it once")
        return output
    return Output(output, "nchw" if layout is None else layout)
