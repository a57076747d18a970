"""Adversarial AutoAugment's policy controller: a one-layer LSTM sampling policies token by token.

A policy is 5 sub-policies × 2 ops, each op two decisions — its type (16 ops) and its
magnitude bin (10) — so 20 decisions per policy. Each step's LSTM output feeds the head
of that decision; the embedding of the sampled action is the next step's input; the
hidden state runs through the whole policy (it is not reset between sub-policies).
Zhang et al. (ICLR 2020): hidden 100, embedding 32, Adam lr 3.5e-4, entropy weight 1e-5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..policy import Policy
from ..spaces import get_space


class PolicyController(nn.Module):
    """LSTM controller over the ``space``'s ops and bins.

    Args:
        space: search space name (its ops are the op vocabulary, its bins the magnitudes).
        sub_policies, ops_per_sub_policy: policy shape (5 × 2 in the paper).
        hidden, embedding: LSTM hidden size and action embedding size (100, 32).
    """

    def __init__(
        self,
        space: str = "adversarial",
        sub_policies: int = 5,
        ops_per_sub_policy: int = 2,
        hidden: int = 100,
        embedding: int = 32,
    ):
        super().__init__()
        self.space = get_space(space)
        self.sub_policies, self.ops_per_sub_policy = sub_policies, ops_per_sub_policy
        self.n_ops, self.n_bins = len(self.space.ops), self.space.n_bins
        self.start = nn.Parameter(torch.zeros(1, embedding))
        self.op_embedding = nn.Embedding(self.n_ops, embedding)
        self.bin_embedding = nn.Embedding(self.n_bins, embedding)
        self.lstm = nn.LSTMCell(embedding, hidden)
        self.op_head = nn.Linear(hidden, self.n_ops)
        self.bin_head = nn.Linear(hidden, self.n_bins)

    @property
    def steps(self) -> int:
        """Decisions per policy (20): op, bin, op, bin, …"""
        return 2 * self.sub_policies * self.ops_per_sub_policy

    def _run(self, count: int, actions: torch.Tensor | None, generator: torch.Generator | None):
        device = self.start.device
        state = None
        inputs = self.start.expand(count, -1)
        taken, log_probs, entropies = [], [], []
        for step in range(self.steps):
            state = self.lstm(inputs, state)
            is_op = step % 2 == 0
            logits = (self.op_head if is_op else self.bin_head)(state[0])
            log_p = torch.log_softmax(logits, dim=-1)
            if actions is None:
                action = torch.multinomial(log_p.exp().detach().cpu(), 1, generator=generator).squeeze(1).to(device)
            else:
                action = actions[:, step]
            taken.append(action)
            log_probs.append(log_p.gather(1, action[:, None]).squeeze(1))
            entropies.append(-(log_p.exp() * log_p).sum(-1))
            inputs = (self.op_embedding if is_op else self.bin_embedding)(action)
        return torch.stack(taken, 1), torch.stack(log_probs, 1).sum(1), torch.stack(entropies, 1).sum(1)

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """int64 [count, steps]: ``count`` policies' actions (op index, bin, op, bin, …).

        ``generator``: a CPU ``torch.Generator`` (sampling draws on the CPU, so a seed
        gives the same policies on any device).
        """
        return self._run(count, None, generator)[0].cpu()

    def evaluate(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability (float [M]) and entropy (float [M], summed over the steps) of
        the given actions under the current parameters, with gradients."""
        actions = torch.as_tensor(actions, dtype=torch.int64, device=self.start.device)
        _, log_prob, entropy = self._run(len(actions), actions, None)
        return log_prob, entropy

    def to_policies(self, actions) -> list[Policy]:
        """The :class:`Policy` of each row of ``actions``."""
        actions = np.asarray(torch.as_tensor(actions).cpu())
        policies = []
        for row in actions.reshape(len(actions), self.sub_policies, self.ops_per_sub_policy, 2):
            policies.append(
                Policy([[(self.space.ops[op], int(b)) for op, b in sub] for sub in row], space=self.space.name)
            )
        return policies


@torch.no_grad()
def kl_divergence(
    controller: PolicyController,
    reference: PolicyController,
    count: int = 512,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KL(controller ‖ reference) between the two controllers' policy distributions, in nats:
    the Monte-Carlo mean of ``log p(a) − log q(a)`` over ``count`` policies ``a`` drawn from
    ``controller``; returns ``(estimate, standard error)``."""
    actions = controller.sample(count, generator)
    log_p, _ = controller.evaluate(actions)
    log_q, _ = reference.evaluate(actions.to(next(reference.parameters()).device))
    diff = (log_p - log_q.to(log_p.device)).double()
    return float(diff.mean()), float(diff.std() / np.sqrt(count)) if count > 1 else float("nan")


@torch.no_grad()
def action_distributions(
    controller: PolicyController, count: int = 512, generator: torch.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ops float64 [n_ops], bins float64 [n_bins])``: how often each op and each magnitude bin
    is chosen, over the op slots of ``count`` sampled policies (each sums to 1)."""
    actions = controller.sample(count, generator)
    ops, bins = actions[:, 0::2].reshape(-1).numpy(), actions[:, 1::2].reshape(-1).numpy()
    return (
        np.bincount(ops, minlength=controller.n_ops) / ops.size,
        np.bincount(bins, minlength=controller.n_bins) / bins.size,
    )


def bin_distribution(
    controller: PolicyController, count: int = 512, generator: torch.Generator | None = None
) -> np.ndarray:
    """float64 [n_bins]: how often each magnitude bin is chosen, over ``count`` sampled policies."""
    return action_distributions(controller, count, generator)[1]


def normalized_rewards(rewards: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(r − mean) / std across the M policies (std 0 → zeros)."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    std = rewards.std(unbiased=False) if len(rewards) > 1 else torch.tensor(0.0)
    return (rewards - rewards.mean()) / (std + eps) if std > 0 else torch.zeros_like(rewards)


def controller_loss(
    log_prob: torch.Tensor, entropy: torch.Tensor, rewards: torch.Tensor, entropy_weight: float = 1e-5
) -> torch.Tensor:
    """REINFORCE loss the controller minimizes: −mean(normalized reward × log p) − w × mean entropy.

    ``rewards``: float [M], each policy's training loss averaged over the epoch; the
    controller thus *maximizes* the target network's loss.
    """
    advantage = normalized_rewards(rewards).to(log_prob.device)
    return -(advantage * log_prob).mean() - entropy_weight * entropy.mean()


def make_optimizer(controller: PolicyController, lr: float = 3.5e-4) -> torch.optim.Adam:
    """Adam with the paper's learning rate."""
    return torch.optim.Adam(controller.parameters(), lr=lr)


def update(
    controller: PolicyController,
    optimizer: torch.optim.Optimizer,
    actions: torch.Tensor,
    rewards,
    entropy_weight: float = 1e-5,
) -> dict:
    """One controller step on one epoch's M policies; returns loss, mean entropy and
    the normalized rewards (for logging)."""
    log_prob, entropy = controller.evaluate(actions)
    loss = controller_loss(log_prob, entropy, torch.as_tensor(rewards, dtype=torch.float32), entropy_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {
        "loss": float(loss.detach()),
        "entropy": float(entropy.detach().mean()),
        "normalized_rewards": normalized_rewards(torch.as_tensor(rewards, dtype=torch.float32)).tolist(),
    }
