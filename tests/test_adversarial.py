"""The Adversarial AutoAugment trainer on tiny Fashion-MNIST runs (CPU): rewards, artefacts, resume, guards."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from fastpolicy import PolicySchedule
from fastpolicy.loader.loader import Batch
from fastpolicy.search import null
from fastpolicy.train import loop
from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch
from fastpolicy.train.checkpoint import CheckpointError
from fastpolicy.train.presets import get_preset
from fastpolicy.train.rundir import RunFolderError

pytest.importorskip("nvidia.dali")


def _config(out, **changes) -> AdversarialConfig:
    settings = dict(
        out=str(out), epochs=2, train_subset=192, val_subset=96, batch=32, M=3, progress=False, controller_window=0
    )
    return AdversarialConfig(**(settings | changes))


def test_per_policy_losses_come_from_their_own_samples():
    per_sample = torch.tensor([1.0, 2.0, 10.0, 20.0, 30.0, 5.0])
    policy_ids = torch.tensor([0, 0, 1, 1, 1, 2])
    sums, counts = loop.per_policy_mean(per_sample, policy_ids, 4)
    assert torch.equal(sums, torch.tensor([3.0, 60.0, 5.0, 0.0]))
    assert torch.equal(counts, torch.tensor([2.0, 3.0, 1.0, 0.0]))


def test_non_finite_losses_are_skipped_and_never_rewarded():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    preset = get_preset("fashion_mnist").with_(epochs=1)
    optimizer = loop.make_optimizer(model, preset)
    scheduler = loop.make_scheduler(optimizer, preset, 3)
    batches = []
    for step in range(3):
        images = torch.randn(4, 1, 2, 2)
        if step == 1:
            images[0] = float("nan")
        batches.append(Batch(images, torch.tensor([0, 1, 2, 0]), torch.tensor([0, 0, 1, 1]), step=step))
    with pytest.warns(UserWarning, match="non-finite loss at step 1"):
        result = loop.train_epoch(model, batches, optimizer, scheduler, 2, torch.device("cpu"), progress=False)
    assert result["skipped"] == 1 and np.all(np.isfinite(result["policy_loss"]))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_two_epochs_write_every_artefact(tmp_path):
    row = AdversarialSearch(_config(tmp_path)).run()
    for name in ("checkpoint.pt", "metrics.csv", "schedule.json", "op_distribution.png", "samples.png", "summary.json"):
        assert os.path.getsize(tmp_path / name) > 0, name
    assert os.listdir(tmp_path / "tensorboard")
    schedule = PolicySchedule.load(tmp_path / "schedule.json")
    assert len(schedule) == 2 and all(len(policies) == 3 for policies in schedule.epochs)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "controller_entropy" in rows[0] and "reward/2" in rows[0]
    assert len(row["reward"]) == 3 and row["controller_entropy"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["skipped_steps"] == 0


class Interrupted(Exception):
    pass


def test_resume_continues_the_same_trajectory(tmp_path):
    whole = AdversarialSearch(_config(tmp_path / "whole"))
    whole.run()

    def stop(search, row):
        raise Interrupted

    with pytest.raises(Interrupted):
        AdversarialSearch(_config(tmp_path / "cut")).run(on_epoch_end=stop)
    resumed = AdversarialSearch(_config(tmp_path / "cut"), resume=True)
    assert resumed.epoch == 1
    resumed.run()
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.controller.parameters(), resumed.controller.parameters()):
        assert torch.equal(a, b)
    assert whole.schedule == resumed.schedule
    assert [r["reward"] for r in whole.history] == [r["reward"] for r in resumed.history]
    assert (tmp_path / "whole" / "metrics.csv").read_text().count("\n") == (
        tmp_path / "cut" / "metrics.csv"
    ).read_text().count("\n")


def test_resume_refuses_other_settings(tmp_path):
    AdversarialSearch(_config(tmp_path, epochs=1)).run()
    with pytest.raises(CheckpointError, match=r"other settings \(epochs: 1 → 2, seed: 0 → 3\)"):
        AdversarialSearch(_config(tmp_path, epochs=2, seed=3), resume=True)
    with pytest.raises(RunFolderError, match="no run to continue"):
        AdversarialSearch(_config(tmp_path / "none"), resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        AdversarialSearch(_config(tmp_path / "empty"), resume=True)


@pytest.mark.parametrize("mode", ["baseline", "fixed", "random"])
def test_ablation_modes(tmp_path, mode):
    search = AdversarialSearch(_config(tmp_path, mode=mode, epochs=1))
    row = search.run()
    assert (1 if mode == "baseline" else 3) == search.preset.M
    assert len(row["reward"]) == search.preset.M and "controller_loss" not in row
    assert len(search.schedule) == (1 if mode == "random" else 0)


@pytest.mark.slow
def test_cli_runs_the_default_search(tmp_path):
    from fastpolicy.cli import main

    assert (
        main(
            [
                "search",
                "adversarial",
                "--out",
                str(tmp_path),
                "--epochs",
                "1",
                "--subset",
                "128",
                "--batch",
                "32",
                "--M",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "schedule.json").exists()


def test_controller_window_updates_within_the_epoch_and_credits_the_right_policies(tmp_path):
    search = AdversarialSearch(_config(tmp_path, epochs=2, controller_window=3, probe_every=1))
    seen = []
    real = search._update_controller

    def spy(actions, rewards, halves=None):
        seen.append((search._window["version"], list(rewards)))
        return real(actions, rewards, halves)

    search._update_controller = spy
    rows = [search.run_epoch() for _ in range(2)]
    batches = len(search.train_loader)
    windows = -(-batches // 3)
    assert [r["controller_updates"] for r in rows] == [windows, windows]
    assert len(search.schedule) == 2 * windows and len(seen) == 2 * windows
    assert len({version for version, _ in seen}) == 2 * windows  # every window its own policies
    assert all(np.isfinite(r["controller_kl_from_start"]) and 0 <= r["controller_mean_bin"] <= 9 for r in rows)
    # every update is logged: its rewards as credited, their normalization, and the probe's distributions
    log = search.update_log
    assert [e["rewards"] for e in log] == [rewards for _, rewards in seen]
    assert [e["epoch"] for e in log] == [0] * windows + [1] * windows
    for entry in log:
        assert np.mean(entry["normalized_rewards"]) == pytest.approx(0, abs=1e-4)  # float32
        assert sum(entry["ops"]) == pytest.approx(1) and sum(entry["bins"]) == pytest.approx(1)
        assert len(entry["ops"]) == search.controller.n_ops and np.isfinite(entry["kl_from_start"])
    assert any(np.isfinite(e["split_half_r"]) for e in log)  # windows of ≥ 2 batches with distinct rewards
    # schedule.json stays per epoch (each epoch's last window), windows.json holds every window
    assert search.epoch_schedule.epochs == [search.schedule[windows - 1], search.schedule[2 * windows - 1]]
    search.write_artefacts()
    assert PolicySchedule.load(str(tmp_path / "schedule.json")) == search.epoch_schedule
    assert PolicySchedule.load(str(tmp_path / "windows.json")) == search.schedule


def test_a_frozen_controller_takes_the_same_path_and_never_moves(tmp_path):
    """controller_lr 0 (the studies' control arm): updates run and are logged, the parameters stay
    those of the start, so its KL from the start is 0 and its policies keep the start's distribution."""
    search = AdversarialSearch(_config(tmp_path, epochs=1, controller_window=2, controller_lr=0.0, probe_every=2))
    start = [p.detach().clone() for p in search.controller.parameters()]
    search.run_epoch()
    assert len(search.update_log) >= 2
    assert all(torch.equal(a, b) for a, b in zip(start, search.controller.parameters(), strict=True))
    assert ["kl_from_start" in e for e in search.update_log] == [i % 2 == 0 for i in range(len(search.update_log))]
    assert all(e["kl_from_start"] == 0 for e in search.update_log if "kl_from_start" in e)


def test_a_new_batch_scales_the_presets_learning_rate(caplog):
    """Linear scaling: lr × batch / preset batch when --batch overrides the preset's; unchanged otherwise."""
    import logging

    from fastpolicy.train.aws import AWSConfig
    from fastpolicy.train.final import TrainConfig
    from fastpolicy.train.trainer import log_lr_scaling

    preset = get_preset("imagenet_resnet50")
    assert AdversarialConfig(out="x", preset="imagenet_resnet50").resolved_preset().lr == preset.lr == 0.8
    assert AdversarialConfig(out="x", preset="imagenet_resnet50", batch=2048).resolved_preset().lr == 0.8
    scaled = AdversarialConfig(out="x", preset="imagenet_resnet50", batch=4).resolved_preset()
    assert (scaled.batch, scaled.lr) == (4, pytest.approx(0.8 * 4 / 2048))
    assert TrainConfig(out="x", batch=32).resolved_preset().lr == pytest.approx(0.05 / 2)
    aws_preset, _, finetune_lr = AWSConfig(out="x", batch=32).resolved()
    assert aws_preset.lr == pytest.approx(0.025) and finetune_lr == pytest.approx(0.0025)
    assert AWSConfig(out="x").resolved()[2] == pytest.approx(0.05 * 0.1)
    logger = logging.getLogger("fastpolicy")  # the CLI's setup stops it propagating to caplog's root handler
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="fastpolicy"):
            log_lr_scaling(preset, scaled)
    finally:
        logger.removeHandler(caplog.handler)
    assert "learning rate 0.8 × 4/2048" in caplog.text and "linear scaling" in caplog.text


def test_controller_kl_from_start():
    from fastpolicy.search import controller as ctl

    torch.manual_seed(0)
    controller = ctl.PolicyController()
    start = ctl.PolicyController()
    start.load_state_dict(controller.state_dict())
    kl, error = ctl.kl_divergence(controller, start, 256, torch.Generator().manual_seed(1))
    assert kl == 0 and error == 0
    optimizer = ctl.make_optimizer(controller, lr=0.05)
    actions = controller.sample(8, torch.Generator().manual_seed(2))
    for _ in range(5):
        ctl.update(controller, optimizer, actions, torch.arange(8.0), 0.0)
    kl, error = ctl.kl_divergence(controller, start, 512, torch.Generator().manual_seed(3))
    assert kl > 3 * error > 0
    assert ctl.bin_distribution(controller, 64).sum() == pytest.approx(1)


def test_the_default_preset_updates_every_batch_and_reports_its_shuffled_reward_null(tmp_path):
    """The embedded default updates the controller once per batch (the paper: once per epoch, which
    leaves three epochs' controller unmoved) and ends with its KL beside a shuffled-reward null, in
    summary.json, the log and ``fastpolicy show``. ``--controller-window 0`` is the paper's epoch."""
    from fastpolicy import show

    assert AdversarialConfig(out="x").resolved_config().controller_window == 1
    assert AdversarialConfig(out="x").resolved_config().probe_every == 8
    assert AdversarialConfig(out="x", controller_window=0).resolved_preset().controller_window == 0
    assert AdversarialConfig(out="x", preset="cifar10_wrn28_10").resolved_config().controller_window == 0
    with pytest.raises(ValueError, match="controller_window"):
        AdversarialConfig(out="x", controller_window=-1).resolved_preset()
    out = tmp_path / "run"
    config = AdversarialConfig(
        out=str(out), epochs=1, train_subset=128, val_subset=64, batch=32, M=2, progress=False, null_draws=3
    )
    search = AdversarialSearch(config)
    search.run()
    assert len(search.update_log) == len(search.schedule) == 4 and len(search.epoch_schedule) == 1  # 128 / 32
    found = json.loads((out / "summary.json").read_text())["controller_null"]
    assert found["updates"] == 4 and len(found["null_kl"]) == 3
    assert found["kl"] == search.history[-1]["controller_kl_from_start"]
    assert found["above_null"] == bool(found["kl"] > np.percentile(found["null_kl"], 95))
    assert found["null_kl"] == pytest.approx(
        null.controller_null(search.controller_start, [e["rewards"] for e in search.update_log], 3.5e-4, 1e-5, 0, 3)
    )
    lines = show.describe(str(out))
    assert any(line.startswith("against noise") and "3 replays" in line for line in lines), lines
    assert AdversarialSearch.controller_null(search) is not None
    search.config = AdversarialConfig(**{**config.__dict__, "null_draws": 0})
    assert search.controller_null() is None


def test_a_checkpoint_from_before_the_preset_window_resumes_with_its_epoch_window_only(tmp_path):
    """Such a checkpoint saved controller_window None meaning one epoch (now: the preset's, 1 batch);
    resumed with the defaults it is refused as other settings, never silently switched to per-batch
    updates; with --controller-window 0 it resumes, its per-epoch schedule kept."""
    AdversarialSearch(_config(tmp_path, epochs=2, M=2)).run_epoch()  # its checkpoint after epoch 0
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    old = {k: v for k, v in state["config"].items() if k != "null_draws"}
    state["config"] = old | {"controller_window": None, "probe_every": 1}
    del state["epoch_schedule"]  # (extra_state is saved at the checkpoint's top level)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="controller_window"):
        AdversarialSearch(_config(tmp_path, epochs=2, M=2, controller_window=None), resume=True)
    resumed = AdversarialSearch(_config(tmp_path, epochs=2, M=2, controller_window=0), resume=True)
    assert resumed.window is None and len(resumed.epoch_schedule) == len(resumed.schedule) == 1
