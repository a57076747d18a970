"""The training step: no per-step host synchronization with fused SGD, non-finite steps skipped."""

from __future__ import annotations

import warnings

import torch

from fastpolicy.train import loop


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, x):
        out = self.linear(x.flatten(1))
        return torch.where(x.flatten(1)[:, :1] > 100, torch.nan, out)  # a marked batch gives NaN logits


def _batches(poisoned: set[int], steps: int = 6):
    g = torch.Generator().manual_seed(0)
    out = []
    for step in range(steps):
        images = torch.randn(8, 1, 2, 2, generator=g)
        if step in poisoned:
            images[0, 0, 0, 0] = 1000.0
        out.append((images, torch.randint(0, 3, (8,), generator=g), torch.arange(2).repeat_interleave(4)))
    return out


def _train(fused: bool, poisoned: set[int], steps: int = 6):
    torch.manual_seed(0)
    model = _Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=fused or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = loop.train_epoch(
            model,
            _batches(poisoned, steps),
            optimizer,
            scheduler,
            2,
            torch.device("cpu"),
            progress=False,
            sync=False,
            on_step=lambda b, means: seen.append(means.clone()),
        )
    return model, result, seen


def test_fused_sgd_skips_a_non_finite_step_on_the_device_like_the_host_check():
    host_model, host, host_seen = _train(False, {0, 3})
    device_model, device, device_seen = _train(True, {0, 3})  # step 0 (no momentum yet) checks on the host
    assert host["skipped"] == device["skipped"] == 2
    for a, b in zip(host_model.parameters(), device_model.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.tensor(host["policy_loss"]), torch.tensor(device["policy_loss"]))
    assert abs(host["loss"] - device["loss"]) < 1e-6
    # the host path reports taken steps only; the device path every step, NaN where skipped
    assert len(host_seen) == 4 and len(device_seen) == 5 and torch.isnan(device_seen[2]).all()


def test_a_skipped_step_leaves_the_weights_and_momentum_untouched():
    clean, _, _ = _train(True, set(), steps=5)
    poisoned, result, _ = _train(True, {5}, steps=6)  # the sixth step is skipped on the device
    assert result["skipped"] == 1
    for a, b in zip(clean.parameters(), poisoned.parameters()):
        assert torch.equal(a, b)


def test_make_optimizer_fuses_on_a_gpu_only():
    from fastpolicy.train.presets import PRESETS

    preset = next(iter(PRESETS.values()))
    assert not loop.make_optimizer(_Net(), preset).param_groups[0]["fused"]
