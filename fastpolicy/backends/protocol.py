"""The one policy-stage protocol: what every backend takes and returns; it imports no backend.

Every backend is a :class:`PolicyStage`: ``stage.apply(images, params, out)`` takes a
torch uint8 batch (:func:`copy_rows` gives the accepted shapes) and
:class:`~fastpolicy.params.PolicyParams` (or None) and returns the augmented batch as a
torch tensor [B, C, H, W] **on the images' device**, of the dtype, memory layout and
normalization :class:`OutputSpec` ``out`` asks for. The backends themselves are registered
with :func:`~.registration.register_stage` and built by :func:`~.stage.make_stage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..params import NO_OP, PolicyParams

DTYPES = {"uint8": torch.uint8, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
"""Output element types (the one table): uint8 pixels as they are, or normalized floats."""

LAYOUTS = ("nchw", "channels_last")
"""Output memory layouts of the [N, C, H, W] batch: contiguous, or torch's channels-last."""


def normalization(mean, std) -> tuple[np.ndarray, np.ndarray]:
    """float32[C] ``mean × 255`` and ``1 / (std × 255)`` (pixel units) for ``mean`` and ``std``
    in [0, 1] units, rounded as torch does for ``torch.tensor(mean) * 255`` and
    ``1 / (torch.tensor(std) * 255)``; ValueError for non-finite means or stds ≤ 0."""
    mean, std = np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError(
            f"normalization needs finite means and positive stds, got mean {mean.tolist()}, std {std.tolist()}"
        )
    return mean * np.float32(255), np.float32(1) / (std * np.float32(255))


@dataclass(frozen=True)
class OutputSpec:
    """What a stage writes.

    Attributes:
        dtype: a key of :data:`DTYPES`; the float types hold ``(v / 255 - mean) / std``,
            computed in float32 as ``(v - 255·mean) · (1 / (255·std))`` and rounded to
            nearest even.
        layout: ``"nchw"`` (contiguous) or ``"channels_last"``
            (``torch.channels_last``, what a channels-last model consumes without a copy).
        mean, std: per-channel normalization in [0, 1] units (float types only).
    """

    dtype: str = "float32"
    layout: str = "nchw"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"output dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"output layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.normalized and (self.mean is None or self.std is None):
            raise ValueError(f"output dtype {self.dtype!r} needs mean and std")
        if self.normalized:
            normalization(self.mean, self.std)  # validates

    @property
    def normalized(self) -> bool:
        """True for the float types."""
        return self.dtype != "uint8"

    @property
    def torch_dtype(self) -> torch.dtype:
        """The torch element type of the result."""
        return DTYPES[self.dtype]

    @property
    def memory_format(self) -> torch.memory_format:
        """The torch memory format of the result."""
        return torch.channels_last if self.layout == "channels_last" else torch.contiguous_format

    def pixel_normalization(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """float32[C] ``255·mean`` and ``1 / (255·std)`` (see :func:`normalization`)."""
        mean, inv_std = normalization(self.mean, self.std)
        if len(mean) != channels or len(inv_std) != channels:
            raise ValueError(f"mean and std need {channels} values, got {self.mean} and {self.std}")
        return mean, inv_std


class PolicyStage:
    """Applies per-sample policies to uint8 batches (see the module docstring).

    Attributes:
        name: the backend's registered name.
        host_seconds: seconds spent on the host preparing the stage's arguments (packing,
            upload calls), summed over calls; the stage's own compute is the rest of its time.
        builds: pipelines or programs the stage built (a DALI stage builds one pipeline once;
            new parameters never rebuild it); 0 for stages that build nothing.
    """

    name = ""
    builds = 0

    @property
    def host_seconds(self) -> float:
        return 0.0

    def apply(self, images: torch.Tensor, params: PolicyParams | None, out: OutputSpec) -> torch.Tensor:
        """``images`` with ``params`` applied (None or all slots skipped: only converted), as
        ``out`` asks: torch [B, C, H, W] on the images' device.

        ``images`` (torch uint8, C = 1 or 3, not modified) is either B samples [B, H, W, C],
        or the loader's copies [N, M, H, W, C] (M copies of each of N images, image-major as
        the source stacks them), whose B = M·N samples are policy-major: sample m·N + n is
        ``images[n, m]`` (see :func:`copy_rows`). The fused stages read the copies in place,
        the others gather them first."""
        raise NotImplementedError


def copy_rows(images):
    """The one place the copies' row order is translated: a [N, M, H, W, C] batch as its
    [N·M, H, W, C] rows and int32[M·N], the row holding sample m·N + n (``n·M + m``); a
    [B, H, W, C] batch as it is, with None (sample b is row b). Any array with ``ndim``,
    ``shape`` and ``reshape`` (torch, NumPy, CuPy); the rows are a view."""
    if images.ndim != 5:
        return images, None
    n, m = int(images.shape[0]), int(images.shape[1])
    rows = (np.arange(n, dtype=np.int32)[None, :] * m + np.arange(m, dtype=np.int32)[:, None]).reshape(-1)
    return images.reshape(n * m, *images.shape[2:]), rows


def check_rows(images: torch.Tensor, params: PolicyParams | None, samples: int) -> None:
    """ValueError naming the problem unless ``images`` (the rows of :func:`copy_rows`) are
    uint8 [rows, H, W, C] with C = 1 or 3 and ``params`` describe ``samples`` samples."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[3] not in (1, 3):
        raise ValueError(
            f"images must be uint8 [N, H, W, C] or [N, M, H, W, C] with C = 1 or 3, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if params is not None and params.n != samples:
        raise ValueError(f"params describe {params.n} samples but the batch has {samples}")


def checked_samples(images: torch.Tensor, params: PolicyParams | None) -> int:
    """The number of samples of ``images`` (4-D rows or 5-D copies), checked by :func:`check_rows`."""
    rows, in_rows = copy_rows(images)
    samples = int(rows.shape[0]) if in_rows is None else len(in_rows)
    check_rows(rows, params, samples)
    return samples


def gather_samples(images: torch.Tensor, params: PolicyParams | None) -> torch.Tensor:
    """``images`` as uint8 [B, H, W, C] in sample order (copies gathered by :func:`copy_rows`),
    checked by :func:`check_rows`: the input of the stages that do not read copies in place."""
    checked_samples(images, params)
    rows, in_rows = copy_rows(images)
    if in_rows is not None:
        rows = rows[torch.as_tensor(np.asarray(in_rows, np.int64), device=rows.device)]
    return rows


def any_op(params: PolicyParams | None) -> bool:
    """Whether any sample applies an op in any slot."""
    return params is not None and bool(np.any(params.op != NO_OP))


def finish(images: torch.Tensor, out: OutputSpec) -> torch.Tensor:
    """uint8 [N, H, W, C] → ``out`` with torch ops (the stages without a fused output):
    normalized in NHWC order (contiguous, so fast) with the kernels' float32 arithmetic,
    then viewed as [N, C, H, W] (channels-last for free) or made contiguous."""
    channels = images.shape[3]
    if out.normalized:
        mean, inv_std = (torch.from_numpy(a).to(images.device) for a in out.pixel_normalization(channels))
        images = images.to(torch.float32).sub_(mean).mul_(inv_std).to(out.torch_dtype)
    return images.permute(0, 3, 1, 2).contiguous(memory_format=out.memory_format)


__all__ = [
    "DTYPES",
    "LAYOUTS",
    "OutputSpec",
    "PolicyStage",
    "any_op",
    "check_rows",
    "copy_rows",
    "finish",
    "gather_samples",
    "normalization",
]
