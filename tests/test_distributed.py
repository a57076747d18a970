"""torchrun / DDP on the CPU (gloo, 2 processes): global rewards, identical policies on every rank, resume."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from fastpolicy.loader.loader import Batch
from fastpolicy.search import controller as ctl
from fastpolicy.train import distributed, loop
from fastpolicy.train.presets import get_preset

M, N, STEPS = 2, 8, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, world: int, *args):
    """Run ``fn(rank, *args)`` in ``world`` fresh processes joined by gloo (as torchrun would)."""
    port = _free_port()
    mp.spawn(_entry, args=(fn, world, port, *args), nprocs=world, join=True)


def _entry(rank, fn, world, port, *args):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    distributed.init_from_env("cpu")
    try:
        fn(rank, *args)
    finally:
        distributed.shutdown()


def _global_batches():
    """STEPS global batches of M·N rows (row m·N + n is copy m of image n) with fixed data."""
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(M, N, 1, 6, 6, generator=g), torch.randint(0, 3, (N,), generator=g)) for _ in range(STEPS)]


def _batches(part: slice):
    """The batches one process sees: images ``part`` of every global batch, all M copies."""
    out = []
    for step, (images, labels) in enumerate(_global_batches()):
        local = images[:, part]
        n = local.shape[1]
        out.append(
            Batch(
                local.reshape(M * n, 1, 6, 6), labels[part].repeat(M), torch.arange(M).repeat_interleave(n), step=step
            )
        )
    return out


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _train(model, batches, train_model=None):
    preset = get_preset("fashion_mnist").with_(epochs=1)
    optimizer = loop.make_optimizer(model, preset)
    scheduler = loop.make_scheduler(optimizer, preset, STEPS)
    return loop.train_epoch(train_model or model, batches, optimizer, scheduler, M, torch.device("cpu"), progress=False)


def _ddp_rank(rank, out):
    model = _model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    half = N // 2
    result = _train(model, _batches(slice(rank * half, (rank + 1) * half)), ddp)
    controller = ctl.PolicyController()
    torch.manual_seed(5)  # different per-rank generators: the broadcast must make the actions equal
    actions = distributed.broadcast_object(controller.sample(M, torch.Generator().manual_seed(rank)))
    ctl.update(controller, ctl.make_optimizer(controller), actions, result["policy_loss"], 1e-5)
    distributed.broadcast_tensors(controller.parameters())
    torch.save(
        {
            "result": {k: v for k, v in result.items() if k != "last_images"},
            "actions": actions,
            "model": model.state_dict(),
            "controller": controller.state_dict(),
        },
        f"{out}/rank{rank}.pt",
    )


@pytest.mark.slow
def test_two_processes_equal_one_process_over_the_global_batch(tmp_path):
    _spawn(_ddp_rank, 2, str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    model = _model()
    single = _train(model, _batches(slice(0, N)))
    for rank in ranks:
        np.testing.assert_allclose(rank["result"]["policy_loss"], single["policy_loss"], rtol=1e-5)
        assert rank["result"]["loss"] == pytest.approx(single["loss"], rel=1e-5)
        assert rank["result"]["accuracy"] == single["accuracy"]
        for name, value in model.state_dict().items():  # DDP's averaged gradients = the full batch's
            torch.testing.assert_close(rank["model"][name], value, rtol=1e-5, atol=1e-6)
    assert torch.equal(ranks[0]["actions"], ranks[1]["actions"])
    controller = ctl.PolicyController()
    ctl.update(controller, ctl.make_optimizer(controller), ranks[0]["actions"], single["policy_loss"], 1e-5)
    for name, value in controller.state_dict().items():
        assert torch.equal(ranks[0]["controller"][name], ranks[1]["controller"][name]), name
        torch.testing.assert_close(ranks[0]["controller"][name], value, rtol=1e-5, atol=1e-6)


def test_per_rank_batch_must_divide():
    assert distributed.per_rank_batch(64) == 64 and distributed.world_size() == 1 and distributed.is_main()


# -- the searches, 2 processes with DALI ---------------------------------------------------


def _adversarial_rank(rank, out):
    from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch

    seen = []

    def record(search, row):
        seen.append(
            {
                "policies": [p.to_dict() for p in search.train_loader.policies],
                "controller": {k: v.clone() for k, v in search.controller.state_dict().items()},
                "reward": row["reward"],
            }
        )

    config = AdversarialConfig(
        out=f"{out}/adversarial", epochs=2, train_subset=128, val_subset=64, batch=32, M=2, device="cpu", progress=False
    )
    AdversarialSearch(config).run(on_epoch_end=record)
    torch.save(seen, f"{out}/adversarial_rank{rank}.pt")


def _aws_rank(rank, out):
    from fastpolicy.train.aws import AWSConfig, AWSSearch

    seen = []

    def record(search, row):
        seen.append(
            {
                "policy": [p.detach().clone() for p in search.policy.parameters()],
                "baseline": search.baseline.value,
                "rank_rewards": row["rank_rewards"],
            }
        )

    config = AWSConfig(
        out=f"{out}/aws",
        stage1_epochs=1,
        loops=2,
        train_subset=128,
        val_count=64,
        batch=32,
        device="cpu",
        progress=False,
    )
    AWSSearch(config).run(on_loop_end=record)
    torch.save(seen, f"{out}/aws_rank{rank}.pt")


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    pytest.importorskip("nvidia.dali")
    out = tmp_path_factory.mktemp("ddp")
    _spawn(_adversarial_rank, 2, str(out))
    _spawn(_aws_rank, 2, str(out))
    return out


@pytest.mark.slow
def test_adversarial_ranks_hold_identical_policies_every_epoch(two_process_runs):
    ranks = [torch.load(two_process_runs / f"adversarial_rank{r}.pt", weights_only=False) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    for a, b in zip(*ranks):
        assert a["policies"] == b["policies"] and a["reward"] == b["reward"]
        for name in a["controller"]:
            assert torch.equal(a["controller"][name], b["controller"][name]), name
    state = torch.load(two_process_runs / "adversarial" / "checkpoint.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["loader"]) == 2
    assert [s["shard"] for s in state["loader"]] == [[0, 2], [1, 2]]
    rows = (two_process_runs / "adversarial" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # rank 0 alone writes: one header, one row per epoch


@pytest.mark.slow
def test_aws_ranks_hold_identical_agents_every_loop(two_process_runs):
    ranks = [torch.load(two_process_runs / f"aws_rank{r}.pt", weights_only=False) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    for a, b in zip(*ranks):
        assert all(torch.equal(x, y) for x, y in zip(a["policy"], b["policy"]))
        assert a["baseline"] == b["baseline"] and len(a["rank_rewards"]) == 2
    assert any(p.abs().sum() > 0 for p in ranks[0][-1]["policy"])  # one PPO update from both candidates


@pytest.mark.slow
def test_resume_needs_the_same_world_size(two_process_runs):
    from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch

    config = AdversarialConfig(
        out=str(two_process_runs / "adversarial"),
        epochs=2,
        train_subset=128,
        val_subset=64,
        batch=32,
        M=2,
        device="cpu",
        progress=False,
    )
    with pytest.raises(ValueError, match="written by 2 process"):
        AdversarialSearch(config, resume=True)


@pytest.mark.slow
def test_torchrun_command_line(tmp_path):
    pytest.importorskip("nvidia.dali")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(_free_port()),
        "-m",
        "fastpolicy.cli",
        "train",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--subset",
        "128",
        "--batch",
        "32",
        "--no-progress",
        "--out",
        str(tmp_path / "run"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stdout and done.stdout.count("final held-out accuracy") == 1
    assert (tmp_path / "run" / "summary.json").exists()
    with pytest.raises(subprocess.CalledProcessError):  # N = 33 does not split over 2 processes
        subprocess.run(
            [*command[:-2], "--batch", "33", "--out", str(tmp_path / "odd")],
            check=True,
            capture_output=True,
            timeout=600,
            env=os.environ | {"OMP_NUM_THREADS": "1"},
        )


@pytest.mark.parametrize("rank", [0, 1])
def test_a_missing_peer_ends_the_wait_with_the_flag_named(rank, tmp_path):
    """Process 0 waits for clients, process 1 for the server: either way the wait ends after
    --rendezvous-timeout with one line naming the address and the flag, exit 2."""
    env = dict(
        os.environ,
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
    )
    command = [sys.executable, "-m", "fastpolicy.cli", "--rendezvous-timeout", "2", "show", str(tmp_path)]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 15  # start-up (~3 s) + the 2 s wait (+ torch's one retry), not more
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("fastpolicy: error: process") and f"127.0.0.1:{env['MASTER_PORT']}" in last, last
    assert "within 2 s" in last and "--rendezvous-timeout" in last, last
    assert "frame #" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr  # torch's retries held
    if rank == 0:
        assert "waits (up to 2 s) for the others" in done.stdout


def test_an_address_in_use_is_not_called_a_timeout(tmp_path):
    """Process 0 cannot listen on a port another socket holds: one line saying so, exit 2."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="2", LOCAL_RANK="0")
        command = [sys.executable, "-m", "fastpolicy.cli", "--rendezvous-timeout", "2", "show", str(tmp_path)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "could not join the group at 127.0.0.1" in last and "wait longer" not in last, last


def test_rendezvous_timeout_values(monkeypatch):
    monkeypatch.delenv("FASTPOLICY_RENDEZVOUS_TIMEOUT", raising=False)
    assert distributed.rendezvous_timeout(None) is None  # torch's default
    assert distributed.rendezvous_timeout(7) == 7.0
    monkeypatch.setenv("FASTPOLICY_RENDEZVOUS_TIMEOUT", "12.5")
    assert distributed.rendezvous_timeout(None) == 12.5
    monkeypatch.setenv("FASTPOLICY_RENDEZVOUS_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="FASTPOLICY_RENDEZVOUS_TIMEOUT"):
        distributed.rendezvous_timeout(None)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--rendezvous-timeout"):
            distributed.rendezvous_timeout(bad)
