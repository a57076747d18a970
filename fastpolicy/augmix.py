"""AugMix (Hendrycks et al., 2020) per sample: the sampler, and the mix of its chains.

:class:`AugMix` draws, for each image, ``mixture_width`` (W) chains of 1–3 ops (``chain_depth``
> 0: that many) from the registry's ``"augmix"`` space — torchvision's ``AugMix`` ranges,
10 bins, each op at a bin drawn uniformly below ``severity``, signed ops with a random sign —
and the weights that mix them: ``m ~ Dirichlet(α, α)``, ``w ~ Dirichlet(α · 1_W)``; image
``x`` becomes ``m₀ x + Σ_c m₁ w_c chain_c(x)``. Unlike torchvision's, whose chains are shared
by the images of a batch, every image draws its own chains.

The parameters are a :class:`~fastpolicy.params.PolicyParams` with ``mix`` (float32[N, W + 1]:
``m₀``, then ``m₁ w_c``) and W chains of ``chain_slots`` slots. Every stage runs them the same
way (:func:`apply_stage`): each chain through the stage's own ops, then :func:`mix` in float32
(``m₀ x``, then each chain added in order, truncated to uint8, as torchvision does);
:func:`fastpolicy.reference.apply_batch` is the specification.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from . import jsonio
from .params import NO_OP, PolicyParams
from .registry import OPS
from .sampling import complete
from .spaces import SearchSpace, get_space

SEVERITY_MAX = 10
"""torchvision's ``_PARAMETER_MAX``: bins of the ``"augmix"`` space, the largest severity."""

DEPTHS = (1, 2, 3)
"""A chain's depth when ``chain_depth`` ≤ 0: drawn uniformly from these (torchvision's)."""


def _whole(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; ValueError naming AugMix's argument otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < low
        or (high is not None and int(value) > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f"≥ {low}"
        raise ValueError(f"AugMix {name} must be an integer {bound}, got {value!r}")
    return int(value)


class AugMix(jsonio.JsonFile):
    """AugMix as a sampler, with torchvision's ``v2.AugMix`` arguments and defaults.

    Args:
        severity: ops at bins drawn uniformly in [0, severity) of 10 (1 … 10).
        mixture_width: chains per image (W ≥ 1).
        chain_depth: ops per chain; ≤ 0 (default −1): 1, 2 or 3, drawn per chain.
        alpha: the Dirichlet concentration of both mixes (> 0).
        all_ops: the enhance ops (Brightness, Color, Contrast, Sharpness) too.
    """

    kind = "augmix"
    draws_values = True
    mixes = True

    def __init__(
        self, severity: int = 3, mixture_width: int = 3, chain_depth: int = -1, alpha: float = 1.0, all_ops: bool = True
    ):
        self.severity = _whole("severity", severity, 1, SEVERITY_MAX)
        self.mixture_width = _whole("mixture_width", mixture_width, 1)
        self.chain_depth = _whole("chain_depth", chain_depth, -(2**31))
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < float("inf"):
            raise ValueError(f"AugMix alpha must be a number > 0, got {alpha!r}")
        self.alpha: float = float(alpha)
        if not isinstance(all_ops, bool):
            raise ValueError(f"AugMix all_ops must be True or False, got {all_ops!r}")
        self.all_ops: bool = all_ops
        full = get_space("augmix")
        ops = tuple(op for op in full.ops if all_ops or not _enhance(full, op))
        self.space: SearchSpace = full if all_ops else SearchSpace("augmix", ops, full.n_bins, full.elements)
        self._op_ids: np.ndarray = np.array([OPS[op].id for op in ops])

    @property
    def depth(self) -> int:
        """Slots per chain: ``chain_depth``, or the deepest drawn depth."""
        return self.chain_depth if self.chain_depth > 0 else max(DEPTHS)

    @property
    def n_ops(self) -> int:
        """Op slots per sample: W chains of :attr:`depth`."""
        return self.mixture_width * self.depth

    @property
    def mix_shape(self) -> tuple[int, int, bool]:
        """(chains, slots per chain, timm's blend): what AugMix policies of one batch share."""
        return self.mixture_width, self.depth, False

    def choose(self, n: int, rng: np.random.Generator):
        raise TypeError("AugMix draws chains and their mix itself: use sample() (draws_values)")

    def sample(self, n: int, rng: np.random.Generator, policy_index: int = 0, version: int = 0) -> PolicyParams:
        """Parameters for ``n`` images: per image W chains (ops uniform over the space, bins
        uniform below ``severity``, random signs; depth as :attr:`chain_depth` says), then the
        weights (``mix``)."""
        width, depth = self.mixture_width, self.depth
        shape = (n, width, depth)
        op = self._op_ids[rng.integers(0, len(self._op_ids), size=shape)]
        bins = rng.integers(0, self.severity, size=shape)
        if self.chain_depth <= 0:
            drawn = rng.choice(np.array(DEPTHS), size=(n, width))
            op = np.where(np.arange(depth) < drawn[..., None], op, NO_OP)
        has_magnitude = np.array([self.space.magnitude(name) is not None for name in self.space.ops])
        magnitude = np.zeros(int(self._op_ids.max()) + 2, np.bool_)
        magnitude[self._op_ids] = has_magnitude
        bins = np.where((op != NO_OP) & magnitude[op], bins, -1)
        params = complete(
            op.reshape(n, width * depth), bins.reshape(n, width * depth), self.space, rng, policy_index, version
        )
        m = rng.dirichlet([self.alpha, self.alpha], size=n)
        w = rng.dirichlet([self.alpha] * width, size=n) * m[:, 1:]
        weights = np.concatenate([m[:, :1], w], axis=1).astype(np.float32)
        arrays = params.arrays() | {"partner": np.zeros((n, width * depth), np.int32)}  # no AugMix op pairs
        return PolicyParams(**arrays, version=version, mix=weights, chain_slots=depth)

    def to_dict(self) -> dict:
        return {
            "format": jsonio.STANDARD_FORMAT,
            "version": 1,
            "kind": self.kind,
            "severity": self.severity,
            "mixture_width": self.mixture_width,
            "chain_depth": self.chain_depth,
            "alpha": self.alpha,
            "all_ops": self.all_ops,
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        return jsonio.standard_from_dict(cls, data, source)

    def __eq__(self, other):
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        return (
            f"AugMix(severity={self.severity}, mixture_width={self.mixture_width}, chain_depth={self.chain_depth}, "
            f"alpha={self.alpha:g}, all_ops={self.all_ops})"
        )


def _enhance(space: SearchSpace, op: str) -> bool:
    """The ``1 ± m`` enhance ops, which ``all_ops=False`` leaves out (torchvision's partial space)."""
    magnitude = space.magnitude(op)
    return magnitude is not None and magnitude.centre == 1.0


def mix(original: torch.Tensor, chains: list[torch.Tensor], weights: np.ndarray, blend: bool = False) -> torch.Tensor:
    """AugMix's mix of uint8 images: ``weights[:, 0] · original``, then ``weights[:, c + 1] ·
    chains[c]`` added in order, in float32, truncated to uint8 (torchvision's arithmetic).
    ``blend`` (timm's): ``weights[:, c + 1] · chains[c]`` summed in order in float32, clipped to
    [0, 255] and truncated, then PIL's blend of ``original`` towards that by ``weights[:, 0]``
    (float32 ``x + m · (mixed − x)``, truncated).

    Args:
        original: uint8 [N, ...] (any layout; the chains alike).
        chains: W uint8 tensors shaped like ``original``.
        weights: float32[N, W + 1].

    Returns:
        uint8, shaped like ``original``.
    """
    w = torch.from_numpy(np.ascontiguousarray(weights, np.float32)).to(original.device)
    shape = (original.shape[0],) + (1,) * (original.dim() - 1)
    if blend:
        summed = torch.zeros(original.shape, dtype=torch.float32, device=original.device)
        for c, chain in enumerate(chains):
            summed.add_(w[:, c + 1].reshape(shape) * chain.to(torch.float32))
        mixed = summed.clamp_(0, 255).to(torch.uint8)
        delta = (mixed.to(torch.int16) - original.to(torch.int16)).to(torch.float32)
        return (original.to(torch.float32) + w[:, 0].reshape(shape) * delta).to(torch.uint8)
    out = w[:, 0].reshape(shape) * original.to(torch.float32)
    for c, chain in enumerate(chains):
        out.add_(w[:, c + 1].reshape(shape) * chain.to(torch.float32))
    return out.to(torch.uint8)


def apply_stage(stage, images: torch.Tensor, params: PolicyParams, out):
    """A policy stage's output for mixed parameters: the original images and each chain through
    ``stage`` as uint8, :func:`mix`, then the slots after the chains (and ``out``'s dtype and
    layout) through ``stage`` again.

    Args:
        stage: a :class:`~fastpolicy.backends.protocol.PolicyStage`.
        images, out: as ``stage.apply`` takes them (the loader's copies read in place).
        params: parameters with ``mix``.
    """
    from .backends.protocol import OutputSpec, finish

    uint8 = OutputSpec("uint8", "channels_last")
    plain = PolicyParams.skipped(params.n, policy=params.policy, version=params.version)
    original = stage.apply(images, plain, uint8)
    chains = [stage.apply(images, chain, uint8) for chain in params.chains()]
    assert params.mix is not None  # mixed parameters only
    mixed = mix(original, chains, params.mix, params.mix_blend).permute(
        0, 2, 3, 1
    )  # channels-last NCHW: NHWC in memory
    after = params.after_mix()
    if after is None or not np.any(after.op != NO_OP):
        return finish(mixed, out)
    return stage.apply(mixed.contiguous(), after, out)  # partners: the mixed images of the batch


__all__ = ["DEPTHS", "SEVERITY_MAX", "AugMix", "apply_stage", "mix"]
