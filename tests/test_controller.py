"""Adversarial AutoAugment's controller: shapes, policies, the reward normalization and REINFORCE update."""

from __future__ import annotations

import pytest
import torch

from fastpolicy import Policy
from fastpolicy.search import controller as ctl


@pytest.fixture
def controller():
    torch.manual_seed(0)
    return ctl.PolicyController()


def test_sampling_shapes_and_policies(controller):
    actions = controller.sample(8, torch.Generator().manual_seed(1))
    assert actions.shape == (8, 20) and actions.dtype == torch.int64
    assert (actions[:, 0::2] < 16).all() and (actions[:, 1::2] < 10).all() and (actions >= 0).all()
    policies = controller.to_policies(actions)
    assert len(policies) == 8 and all(isinstance(p, Policy) for p in policies)
    assert all(len(p.sub_policies) == 5 and p.n_ops == 2 for p in policies)
    first = policies[0].sub_policies[0][0]
    assert first.op == controller.space.ops[int(actions[0, 0])] and first.bin == int(actions[0, 1])
    again = controller.sample(8, torch.Generator().manual_seed(1))
    assert torch.equal(actions, again)


def test_hidden_state_carries_across_sub_policies(controller):
    """The third sub-policy's decision depends on the first sub-policy's actions."""
    a = controller.sample(1, torch.Generator().manual_seed(3))
    b = a.clone()
    b[0, 0] = (a[0, 0] + 1) % 16
    with torch.no_grad():
        lp_a = controller._run(1, a, None)[1]
        lp_b = controller._run(1, b, None)[1]
    # log p differs beyond the changed first step's own term
    with torch.no_grad():
        first = torch.log_softmax(controller.op_head(controller.lstm(controller.start)[0]), -1)[0]
    assert not torch.isclose(lp_a - first[a[0, 0]], lp_b - first[b[0, 0]])


def test_log_prob_and_entropy_match_a_manual_computation(controller):
    actions = controller.sample(3, torch.Generator().manual_seed(2))
    log_prob, entropy = controller.evaluate(actions)
    state, inputs, expected_lp, expected_h = None, controller.start.expand(3, -1), 0, 0
    for step in range(20):
        state = controller.lstm(inputs, state)
        head, emb = (
            (controller.op_head, controller.op_embedding)
            if step % 2 == 0
            else (controller.bin_head, controller.bin_embedding)
        )
        p = torch.softmax(head(state[0]), -1)
        expected_lp = expected_lp + torch.log(p[torch.arange(3), actions[:, step]])
        expected_h = expected_h - (p * torch.log(p)).sum(-1)
        inputs = emb(actions[:, step])
    torch.testing.assert_close(log_prob, expected_lp)
    torch.testing.assert_close(entropy, expected_h)


def test_reward_normalization_and_loss_terms():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0])
    normalized = ctl.normalized_rewards(rewards)
    torch.testing.assert_close(normalized.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalized.std(unbiased=False), torch.tensor(1.0))
    assert torch.equal(ctl.normalized_rewards(torch.ones(4)), torch.zeros(4))
    log_prob = torch.tensor([-1.0, -2.0, -3.0, -4.0])
    entropy = torch.tensor([10.0, 20.0, 30.0, 40.0])
    loss = ctl.controller_loss(log_prob, entropy, rewards, entropy_weight=1e-5)
    torch.testing.assert_close(loss, -(normalized * log_prob).mean() - 1e-5 * 25.0)


def test_a_rewarded_policy_becomes_more_likely(controller):
    """Reward favouring policy 0 (a high training loss) raises its log-probability."""
    optimizer = ctl.make_optimizer(controller, lr=1e-2)
    actions = controller.sample(8, torch.Generator().manual_seed(4))
    before = controller.evaluate(actions)[0].detach()
    rewards = torch.zeros(8)
    rewards[0] = 5.0
    for _ in range(5):
        ctl.update(controller, optimizer, actions, rewards)
    after = controller.evaluate(actions)[0].detach()
    assert after[0] > before[0]
    assert (after[0] - before[0]) > (after[1:] - before[1:]).max()
