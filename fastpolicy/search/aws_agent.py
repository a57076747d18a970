"""AWS's policy learner (Tian et al., NeurIPS 2020): PPO over the pair distribution, EMA baseline.

The policy is :class:`~fastpolicy.distribution.AWSDistribution`'s
``p(e1, e2) = p1(e1) · p2(e2 | e1)``, each factor a normalized sigmoid of its
parameters. :class:`PairPolicy` holds the same parameters as torch tensors so they
can be trained; :meth:`PairPolicy.distribution` hands a NumPy copy to the loader.

A *trajectory* is what one stage-2 loop fine-tuned with: the element pairs its
training images drew. It enters the update as its pair frequencies ``f`` (float [E, E],
summing to 1), and its log-likelihood is the per-image mean ``Σ f · log p`` — the log
of the geometric-mean probability of its draws. (The sum over all draws would give
PPO ratios of e^(thousands × a small change); the mean keeps ratio clipping meaningful.)

Update (per loop, over K ≥ 1 trajectories, e.g. one per process):

* advantage ``A_k = R_k − b`` with the EMA baseline ``b`` *before* this loop's rewards
  (``b`` starts at the first loop's mean reward, so the first advantage is 0);
* up to ``steps`` Adam steps on the clipped surrogate
  ``−mean_k min(ρ_k A_k, clip(ρ_k, 1 − ε, 1 + ε) A_k)``, ``ρ_k = exp(ℓ_θ(f_k) − ℓ_old(f_k))``;
  stop early once ``KL(p_old ‖ p_θ)`` over all E² pairs (exact: the space is small)
  exceeds ``max_kl``;
* then ``b ← w·b + (1 − w)·mean_k R_k`` (w = 0.9).
"""

from __future__ import annotations

import numpy as np
import torch

from ..distribution import PARAMETERIZATIONS, AWSDistribution, log_joint


class PairPolicy(torch.nn.Module):
    """Trainable θ1 (float64 [E]) and θ2 (float64 [E, E]); zeros = uniform. ``parameterization``:
    ``"factorized"`` (p1 · p2) or ``"joint"`` (one normalized sigmoid over the pairs, θ2 only;
    see :mod:`fastpolicy.distribution`)."""

    def __init__(self, n_elements: int | None = None, parameterization: str = "factorized"):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
        self.parameterization = parameterization
        e = n_elements or AWSDistribution().n_elements
        self.theta1 = torch.nn.Parameter(torch.zeros(e, dtype=torch.float64))
        self.theta2 = torch.nn.Parameter(torch.zeros(e, e, dtype=torch.float64))
        self.theta1.requires_grad_(parameterization == "factorized")

    def log_joint(self) -> torch.Tensor:
        """float64 [E, E]: log p(e1, e2) (:func:`~fastpolicy.distribution.log_joint`, differentiable)."""
        return log_joint(self.theta1, self.theta2, self.parameterization)

    def log_likelihood(self, frequencies: torch.Tensor) -> torch.Tensor:
        """float64 [K]: per-image mean log p of K trajectories' pair frequencies [K, E, E]."""
        return (frequencies * self.log_joint()).sum(dim=(1, 2))

    def distribution(self) -> AWSDistribution:
        """The current parameters as an :class:`AWSDistribution` (a NumPy copy)."""
        return AWSDistribution(
            self.theta1.detach().cpu().numpy(), self.theta2.detach().cpu().numpy(), self.parameterization
        )

    @classmethod
    def from_distribution(cls, distribution: AWSDistribution) -> PairPolicy:
        policy = cls(distribution.n_elements, distribution.parameterization)
        with torch.no_grad():
            policy.theta1.copy_(torch.from_numpy(distribution.theta1))
            policy.theta2.copy_(torch.from_numpy(distribution.theta2))
        return policy


def pair_frequencies(pairs: np.ndarray, n_elements: int) -> np.ndarray:
    """float64 [E, E]: how often each (e1, e2) occurs among ``pairs`` (int [N, 2]), summing to 1."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0:
        raise ValueError(f"pairs must be a non-empty int array [N, 2], got shape {pairs.shape}")
    counts = np.bincount(pairs[:, 0] * n_elements + pairs[:, 1], minlength=n_elements**2)
    return (counts / counts.sum()).reshape(n_elements, n_elements)


class EMABaseline:
    """``b ← w·b + (1 − w)·R``; ``None`` until the first reward, which it takes as is."""

    def __init__(self, weight: float = 0.9):
        if not 0 <= weight < 1:
            raise ValueError(f"baseline weight must be in [0, 1), got {weight}")
        self.weight = weight
        self.value: float | None = None

    def advantage(self, reward: float) -> float:
        """``reward − b`` (0 before the first update)."""
        return 0.0 if self.value is None else reward - self.value

    def update(self, reward: float) -> float:
        value = reward if self.value is None else self.weight * self.value + (1 - self.weight) * reward
        self.value = value
        return value

    def state_dict(self) -> dict:
        return {"weight": self.weight, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.weight, self.value = state["weight"], state["value"]


def make_optimizer(policy: PairPolicy, lr: float = 0.1, betas=(0.5, 0.999)) -> torch.optim.Adam:
    """AWS's optimizer: Adam, lr 0.1, betas (0.5, 0.999)."""
    return torch.optim.Adam(policy.parameters(), lr=lr, betas=tuple(betas))


def kl_divergence(old_log_joint: torch.Tensor, new_log_joint: torch.Tensor) -> float:
    """KL(p_old ‖ p_new) in nats over all pairs."""
    return float((old_log_joint.exp() * (old_log_joint - new_log_joint)).sum())


def ppo_update(
    policy: PairPolicy, optimizer, frequencies, advantages, clip: float = 0.2, steps: int = 5, max_kl: float = 0.02
) -> dict:
    """PPO steps on trajectories ``frequencies`` (float [K, E, E]) with ``advantages`` (float [K]).

    Returns ``{"steps": taken, "kl": KL(old ‖ new), "surrogate": last surrogate objective,
    "clip_fraction": fraction of trajectories whose ratio left [1 − ε, 1 + ε]}``.
    """
    frequencies = torch.as_tensor(np.asarray(frequencies), dtype=torch.float64)
    advantages = torch.as_tensor(np.asarray(advantages, dtype=np.float64))
    if frequencies.ndim != 3 or advantages.shape != frequencies.shape[:1]:
        raise ValueError(
            f"need frequencies [K, E, E] and advantages [K], got {tuple(frequencies.shape)} "
            f"and {tuple(advantages.shape)}"
        )
    with torch.no_grad():
        old_log_joint = policy.log_joint()
        old = (frequencies * old_log_joint).sum(dim=(1, 2))
    taken, kl, surrogate, clipped = 0, 0.0, 0.0, 0.0
    for _ in range(steps):
        ratio = torch.exp(policy.log_likelihood(frequencies) - old)
        objective = torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
        optimizer.zero_grad(set_to_none=True)
        (-objective).backward()
        optimizer.step()
        taken += 1
        surrogate = float(objective.detach())
        clipped = float(((ratio - 1).abs() > clip).double().mean())
        with torch.no_grad():
            kl = kl_divergence(old_log_joint, policy.log_joint())
        if kl > max_kl:
            break
    return {"steps": taken, "kl": kl, "surrogate": surrogate, "clip_fraction": clipped}


__all__ = ["EMABaseline", "PairPolicy", "kl_divergence", "make_optimizer", "pair_frequencies", "ppo_update"]
