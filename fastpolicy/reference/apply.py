"""The reference appliers (:mod:`fastpolicy.reference`): one op by value or by bin, and a batch
of per-sample op sequences, dispatched through the op registry."""

from __future__ import annotations

import numpy as np

from .. import registry as _registry
from ..spaces import get_space
from .color import blend
from .geometry import FILL, check_fill


def _as_hwc(image: np.ndarray) -> tuple[np.ndarray, bool]:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return image[..., None], True
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"image must be HW, HW1 or HW3, got shape {image.shape}")
    return image, False


def apply_value(name: str, image: np.ndarray, value: float, center=None, other=None, fill: int = FILL) -> np.ndarray:
    """Apply op ``name`` with parameter ``value`` (its physical unit; see the registry).

    Args:
        image: uint8 HW, HWC (C = 1 or 3).
        value: the op's parameter (degrees for Rotate, a factor for Contrast, …).
        center: Cutout only: (cy, cx) fractions in [0, 1).
        other: SamplePairing only: the partner image, same shape as ``image``.
        fill: geometric ops only: the 0..255 level of pixels moved in from outside the image.

    Returns:
        uint8 array shaped like ``image``.
    """
    fill = check_fill(fill)
    spec = _registry.get_op(name)
    hwc, flat = _as_hwc(image)
    if other is not None:
        other, _ = _as_hwc(other)
    out = spec.reference(hwc, float(value), center=center, other=other, fill=fill)
    return out[..., 0] if flat else out


def apply_op(
    name: str, image: np.ndarray, magnitude_bin: int, sign: int = 1, rng=None, other=None, space: str = "adversarial"
) -> np.ndarray:
    """Apply op ``name`` at ``magnitude_bin`` of ``space`` (AutoAugment's mapping by default).

    Args:
        image: uint8 HW or HWC (C = 1 or 3).
        magnitude_bin: 0 ≤ bin < 10.
        sign: ±1, used by signed ops (geometric; AWS enhance ops).
        rng: ``numpy.random.Generator`` placing Cutout's square (a fresh one if None).
        other: SamplePairing's partner image.
        space: ``"adversarial"`` or ``"aws"``: whose bin→value mapping to use.
    """
    spec = _registry.get_op(name)
    if sign not in (-1, 1):
        raise ValueError(f"sign must be -1 or +1, got {sign!r}")
    value = get_space(space).value(name, magnitude_bin, sign)
    center = None
    if spec.needs == "center":
        center = (rng if rng is not None else np.random.default_rng()).random(2)
    return apply_value(name, image, value, center=center, other=other)


def apply_batch(images: np.ndarray, params, fill: int = FILL) -> np.ndarray:
    """Apply per-sample op sequences to a batch.

    Args:
        images: uint8 NHWC (C = 1 or 3).
        params: :class:`~fastpolicy.params.PolicyParams` with ``params.n == N``.
            SamplePairing blends with ``images[partner]`` as it entered this function.
            With ``mix`` (AugMix): each chain applied to the images, the mix (float32:
            ``mix[:, 0] · x``, then ``mix[:, c + 1] · chain c`` added in order, truncated to
            uint8), then the slots after the chains applied to the mixed images.
        fill: the geometric ops' fill level (see :func:`apply_value`).

    Returns:
        uint8 NHWC, a new array.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be NHWC, got shape {images.shape}")
    if params.n != images.shape[0]:
        raise ValueError(f"params describe {params.n} samples but the batch has {images.shape[0]}")
    if params.mix is not None:
        weights = params.mix[:, :, None, None, None]
        if params.mix_blend:  # timm's: the chains' sum, clipped and truncated, then PIL's blend towards it
            summed = np.zeros(images.shape, np.float32)
            for c, chain in enumerate(params.chains()):
                summed += weights[:, c + 1] * apply_batch(images, chain, fill).astype(np.float32)
            target = np.clip(summed, 0, 255).astype(np.uint8)
            mixed = np.stack([blend(x, t, m) for x, t, m in zip(images, target, params.mix[:, 0])])
        else:
            mixed = weights[:, 0] * images.astype(np.float32)
            for c, chain in enumerate(params.chains()):
                mixed += weights[:, c + 1] * apply_batch(images, chain, fill).astype(np.float32)
            mixed = mixed.astype(np.uint8)
        after = params.after_mix()
        return mixed if after is None else apply_batch(mixed, after, fill)
    out = images.copy()
    for i in range(params.n):
        for slot in range(params.k):
            op_id = int(params.op[i, slot])
            if op_id < 0:
                continue
            out[i] = apply_value(
                _registry.OP_NAMES[op_id],
                out[i],
                params.value[i, slot],
                center=params.center[i, slot],
                other=images[params.partner[i, slot]],
                fill=fill,
            )
    return out


__all__ = ["apply_batch", "apply_op", "apply_value"]
