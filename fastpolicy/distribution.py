"""AWS's policy: a distribution over ordered pairs of the 36 AWS elements.

Two parameterizations (:data:`PARAMETERIZATIONS`), both *normalized sigmoids*
``s = sigmoid(θ); p = s / Σ s``:

* ``"factorized"`` (the official code's, the default): ``p(e1, e2) = p1(e1) · p2(e2 | e1)``,
  θ1 [E] for p1 and θ2 [E, E] (row e1) for p2;
* ``"joint"`` (the paper's text): one normalized sigmoid over all E² pairs, θ2 [E, E]
  its parameters (θ1 unused, zero).

All parameters start at zero, which is the uniform distribution over the 36² = 1296 pairs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import jsonio
from .jsonio import PolicyFormatError
from .magnitude import N_BINS
from .params import PolicyParams
from .registry import OPS
from .sampling import complete
from .spaces import aws

FORMAT = "fastpolicy.aws_distribution"
PARAMETERIZATIONS = ("factorized", "joint")


def pair_label(first: str, second: str) -> str:
    """How an AWS op pair is written (plots, the metrics log, ``fastpolicy show``): the two
    element names (:attr:`~fastpolicy.spaces.Element.name`) joined by ``+``, e.g.
    ``"ShearX@3+Invert"``."""
    return f"{first}+{second}"


def log_normalized_sigmoid(theta):
    """``log(sigmoid(θ) / Σ sigmoid(θ))`` along the last axis, computed stably as log-sigmoid
    minus its log-sum-exp: finite for every finite θ (θ = −1000 included, where ``sigmoid``
    underflows to 0 and the plain ratio is 0/0). A torch tensor gives a tensor (differentiable:
    the AWS agent's); anything else a float64 NumPy array."""
    if isinstance(theta, torch.Tensor):
        log_s = F.logsigmoid(theta)
        return log_s - torch.logsumexp(log_s, dim=-1, keepdim=True)
    return log_normalized_sigmoid(torch.as_tensor(np.asarray(theta, dtype=np.float64))).numpy()


def log_joint(theta1, theta2, parameterization: str):
    """log p(e1, e2) [E, E] of the parameters (NumPy or torch, as :func:`log_normalized_sigmoid`):
    ``log p1(e1) + log p2(e2 | e1)`` (factorized) or one normalized sigmoid over θ2's pairs (joint)."""
    if parameterization == "joint":
        return log_normalized_sigmoid(theta2.reshape(-1)).reshape(theta2.shape)
    return log_normalized_sigmoid(theta1)[:, None] + log_normalized_sigmoid(theta2)


def normalized_sigmoid(theta: np.ndarray) -> np.ndarray:
    """``sigmoid(θ) / Σ sigmoid(θ)`` along the last axis (float64; see :func:`log_normalized_sigmoid`)."""
    return np.exp(log_normalized_sigmoid(theta))


class AWSDistribution(jsonio.JsonFile):
    """Parameters θ1 (float64[E]) and θ2 (float64[E, E]) over the E = 36 AWS elements.

    Args:
        theta1: parameters of p1(e1); zeros (uniform) if None. Must be zero for ``"joint"``.
        theta2: parameters of p2(e2 | e1), row e1 (``"factorized"``), or of the pair
            (e1, e2) (``"joint"``); zeros if None.
        parameterization: ``"factorized"`` or ``"joint"`` (see the module docstring).
    """

    def __init__(self, theta1=None, theta2=None, parameterization: str = "factorized"):
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
        self.parameterization = parameterization
        self.space = aws()
        e = len(self.space.elements)
        self.theta1 = np.zeros(e) if theta1 is None else np.array(theta1, dtype=np.float64)
        self.theta2 = np.zeros((e, e)) if theta2 is None else np.array(theta2, dtype=np.float64)
        if self.theta1.shape != (e,) or self.theta2.shape != (e, e):
            raise ValueError(
                f"AWS parameters must have shapes ({e},) and ({e}, {e}), "
                f"got {self.theta1.shape} and {self.theta2.shape}"
            )
        if not (np.all(np.isfinite(self.theta1)) and np.all(np.isfinite(self.theta2))):
            raise ValueError("AWS parameters must be finite")
        if parameterization == "joint" and np.any(self.theta1 != 0):
            raise ValueError("a joint AWS distribution has no θ1 (it must be zero)")
        p1, p2 = self.probabilities()
        if not (
            np.all(np.isfinite(p1))
            and np.all(np.isfinite(p2))
            and np.allclose(p1.sum(), 1)
            and np.allclose(p2.sum(axis=1), 1)
        ):
            raise ValueError("AWS parameters give probabilities that are not finite or do not sum to 1")
        ids = [OPS[el.op].id for el in self.space.elements]
        self._element_op = np.array(ids)
        self._element_bin = np.array([-1 if el.bin is None else el.bin for el in self.space.elements])

    @property
    def n_elements(self) -> int:
        return len(self.space.elements)

    def __repr__(self) -> str:
        """``AWSDistribution(factorized, 36 elements, entropy 7.17 nats of 7.17, top pair Invert+Invert 0.08%)``."""
        first, second, p = self.top_pairs(1)[0]
        return (
            f"AWSDistribution({self.parameterization}, {self.n_elements} elements, entropy {self.entropy():.2f} nats "
            f"of {np.log(self.n_elements**2):.2f}, top pair {pair_label(first, second)} {p:.2%})"
        )

    def probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """p1: float64[E]; p2: float64[E, E] (row e1 is p2(· | e1)). Each sums to 1 (for a
        joint distribution: its marginal and conditionals)."""
        if self.parameterization == "factorized":
            return normalized_sigmoid(self.theta1), normalized_sigmoid(self.theta2)
        log_joint = self.log_joint()
        log_p1 = np.logaddexp.reduce(log_joint, axis=1)
        return np.exp(log_p1), np.exp(log_joint - log_p1[:, None])

    def log_joint(self) -> np.ndarray:
        """float64[E, E]: log p(e1, e2) (:func:`log_joint`), finite for finite θ."""
        return log_joint(self.theta1, self.theta2, self.parameterization)

    def joint(self) -> np.ndarray:
        """float64[E, E]: p(e1, e2)."""
        return np.exp(self.log_joint())

    def log_prob(self, pairs: np.ndarray) -> np.ndarray:
        """float64[N]: log p(e1, e2) of element-id pairs int[N, 2]."""
        pairs = np.asarray(pairs)
        return self.log_joint()[pairs[:, 0], pairs[:, 1]]

    def entropy(self) -> float:
        """Entropy (nats) of the pair distribution."""
        log_joint = self.log_joint()
        return float(-(np.exp(log_joint) * log_joint).sum())

    def sample_pairs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """int64[n, 2]: element ids (e1, e2) drawn from p1 · p2."""
        p1, p2 = self.probabilities()
        first = rng.choice(self.n_elements, size=n, p=p1)
        cdf = np.cumsum(p2[first], axis=1)
        second = np.minimum((cdf < rng.random((n, 1)) * cdf[:, -1:]).sum(axis=1), self.n_elements - 1)
        return np.stack([first, second], axis=1)

    def params_for_pairs(
        self, pairs: np.ndarray, rng: np.random.Generator, policy_index: int = 0, version: int = 0
    ) -> PolicyParams:
        """Per-sample parameters applying element pair ``pairs[i]`` to sample i."""
        pairs = np.asarray(pairs)
        return complete(
            self._element_op[pairs], self._element_bin[pairs], self.space, rng, policy=policy_index, version=version
        )

    def pairs_of(self, params: PolicyParams) -> np.ndarray:
        """int64[N, 2]: the element pair each sample of ``params`` applied (inverse of
        :meth:`params_for_pairs`); ValueError if a sample's first two (op, bin) are not
        AWS elements."""
        if params.k < 2:
            raise ValueError(f"AWS pairs need 2 op slots, got {params.k}")
        table = np.full((len(OPS), N_BINS + 1), -1, dtype=np.int64)  # [op id, bin + 1] → element
        table[self._element_op, self._element_bin + 1] = np.arange(self.n_elements)
        ops, bins = params.op[:, :2].astype(np.int64), params.bin[:, :2].astype(np.int64)
        valid = (ops >= 0) & (bins >= -1) & (bins < N_BINS)
        pairs = np.where(valid, table[np.maximum(ops, 0), np.clip(bins + 1, 0, N_BINS)], -1)
        if np.any(pairs < 0):
            i, k = np.argwhere(pairs < 0)[0]
            raise ValueError(
                f"sample {i}, slot {k}: (op id {ops[i, k]}, bin {bins[i, k]}) is not an element of the AWS space"
            )
        return pairs

    @property
    def n_ops(self) -> int:
        """Op slots per sample: 2 (a pair of elements)."""
        return 2

    def choose(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """int64[n, 2] op ids and bins of ``n`` sampled element pairs (the sampler interface
        of :mod:`fastpolicy.sampling`; bin -1 for ops without magnitude)."""
        pairs = self.sample_pairs(n, rng)
        return self._element_op[pairs], self._element_bin[pairs]

    def sample(self, n: int, rng: np.random.Generator, policy_index: int = 0, version: int = 0) -> PolicyParams:
        """Per-sample parameters for ``n`` images, one pair each."""
        return self.params_for_pairs(self.sample_pairs(n, rng), rng, policy_index, version)

    def top_pairs(self, k: int = 10) -> list[tuple[str, str, float]]:
        """The ``k`` most probable pairs as (element name, element name, probability)."""
        joint = self.joint()
        flat = np.argsort(joint, axis=None)[::-1][:k]
        names = [el.name for el in self.space.elements]
        return [(names[i // self.n_elements], names[i % self.n_elements], float(joint.flat[i])) for i in flat]

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": 1,
            "elements": [el.name for el in self.space.elements],
            "parameterization": self.parameterization,
            "theta1": self.theta1.tolist(),
            "theta2": self.theta2.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> AWSDistribution:
        """Inverse of :meth:`to_dict`; the element list must equal this version's AWS space."""
        if not isinstance(data, dict):
            raise PolicyFormatError(f"{source}: an AWS distribution must be a JSON object")
        jsonio.check_header(data, FORMAT, source)
        expected = [el.name for el in aws().elements]
        elements = jsonio.field(data, "elements", list, source)
        if elements != expected:
            extra = sorted(set(map(str, elements)) - set(expected))
            raise PolicyFormatError(
                f"{source}: 'elements' do not match the AWS space"
                + (f" (unknown: {', '.join(extra)})" if extra else " (order or count differs)")
            )
        try:
            theta1 = np.array(jsonio.field(data, "theta1", list, source), dtype=np.float64)
            theta2 = np.array(jsonio.field(data, "theta2", list, source), dtype=np.float64)
            parameterization = (
                jsonio.field(data, "parameterization", str, source) if "parameterization" in data else "factorized"
            )  # files before the joint form
            return cls(theta1, theta2, parameterization)
        except (ValueError, TypeError) as err:
            raise PolicyFormatError(f"{source}: bad parameters: {err}") from None
