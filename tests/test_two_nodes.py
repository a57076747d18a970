"""Two nodes on one machine: ``torchrun --nnodes 2 --nproc-per-node 1`` launched twice on localhost,
joined by a c10d rendezvous, gloo on the CPU; the adversarial search on webdataset shards.

The first launch trains one epoch of a two-epoch search and stops right after its checkpoint
(every rank leaves once the checkpoint is whole: the nodes 'die' there); the second launch
resumes it and trains the second epoch. Each rank records the samples it trained on
(``FASTPOLICY_SAMPLES_SEEN``, :mod:`fastpolicy.train.samples_seen`). Checked: in every epoch
the two ranks saw disjoint samples covering the training shards; both ranks' loaders held the
same controller policies (the checkpoints hold every rank's loader state); the second launch
continued from the checkpoint. Nothing hangs: each launch has a deadline, after which both
nodes' process groups are killed.

Run as a script, this file is a node's worker (what ``torchrun`` starts): ``fastpolicy``'s
command line, optionally stopping after the first checkpoint (``--stop-after-checkpoint``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

STOP = "--stop-after-checkpoint"
LAUNCH_SECONDS = 600
"""Deadline of one launch (both nodes; about a minute each on an idle 2-core machine); a hung
rendezvous or collective is killed then."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(argv: list[str], env: dict, run_id: str) -> list[tuple[int, str, str]]:
    """Start ``torchrun`` for node ranks 0 and 1 (one process each, c10d rendezvous on a free
    localhost port) running this file with ``argv``; ``(return code, stdout, stderr)`` per node.
    Both are killed (their whole process groups) if either is still running at the deadline."""
    port = _free_port()
    nodes = []
    for node in range(2):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc-per-node",
            "1",
            "--node-rank",
            str(node),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"localhost:{port}",
            "--rdzv-id",
            run_id,
            "--rdzv-conf",
            "join_timeout=120",
            "--local-addr",
            "127.0.0.1",
            "--max-restarts",
            "0",
            os.path.abspath(__file__),
            *argv,
        ]
        nodes.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
        )
    deadline = time.monotonic() + LAUNCH_SECONDS
    results = []
    try:
        for process in nodes:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((process.returncode, out, err))
    except subprocess.TimeoutExpired:
        pass
    finally:
        _kill([process for process in nodes if process.poll() is None])
    if len(results) < 2:
        pytest.fail(f"the two-node launch {argv} did not finish within {LAUNCH_SECONDS} s; both nodes killed")
    return results


def _kill(launchers: list[subprocess.Popen]) -> None:
    """SIGKILL ``launchers`` and every process below them (torchrun starts its workers in
    sessions of their own, so a process group does not hold them), found through /proc."""
    doomed = {p.pid for p in launchers}
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue
    while True:
        more = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        if not more:
            break
        doomed |= more
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for process in launchers:
        process.wait()


def _check(results, what: str) -> None:
    for node, (code, out, err) in enumerate(results):
        assert code == 0, f"{what}: node {node} exited {code}\n{out[-2000:]}\n{err[-4000:]}"


@pytest.mark.slow
def test_two_nodes_search_on_webdataset_shards_sees_disjoint_samples_and_resumes(photo_tree, tmp_path):
    pytest.importorskip("nvidia.dali")
    import torch

    import fastpolicy
    from fastpolicy.data.shards import write_shards
    from fastpolicy.train import samples_seen

    started = time.monotonic()
    shards = tmp_path / "shards"
    write_shards(photo_tree, str(shards), "webdataset", 6, progress=False)  # 20 samples in 4 shards
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastpolicy.__file__)))
    seen = tmp_path / "seen"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        samples_seen.ENV: str(seen),
    }
    out = tmp_path / "run"
    search = [
        "search",
        "adversarial",
        "--data",
        str(shards / "shard-{000000..000003}.tar"),
        "--val-data",
        str(shards),
        "--preset",
        "cifar10_wrn28_10",  # 32² crops
        "--model",
        "small_cnn",
        "--epochs",
        "2",
        "--batch",
        "4",  # global: 2 per rank, 5 steps per epoch over a rank's 10 samples
        "--M",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
    ]
    first = _launch([STOP, *search], env, f"fastpolicy-test-{os.getpid()}-a")
    _check(first, "first launch (one epoch, then stop)")
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["world_size"] == 2 and not (out / "summary.json").exists()
    assert [s["shard"] for s in state["loader"]] == [[0, 2], [1, 2]]
    epoch0 = [s["policies"] for s in state["loader"]]

    second = _launch([*search, "--resume"], env, f"fastpolicy-test-{os.getpid()}-b")
    _check(second, "second launch (--resume)")
    assert "resumed" in second[0][1] and "after epoch 0" in second[0][1], second[0][1][-2000:]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and (out / "summary.json").exists()
    epoch1 = [s["policies"] for s in state["loader"]]

    # the controller's policies: the same on both ranks, new in the second epoch
    assert epoch0[0] is not None and epoch0[0] == epoch0[1]
    assert epoch1[0] == epoch1[1] and epoch1[0] != epoch0[0]
    schedule = json.loads((out / "schedule.json").read_text())
    assert [entry["policies"] for entry in schedule["epochs"]] == [epoch0[0], epoch1[0]]  # rank 0's controller
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # a header, one row per epoch

    # every epoch: the ranks' samples are disjoint and cover the 20 samples, 5 batches of 2 each
    lines = [samples_seen.read(str(seen), rank) for rank in range(2)]
    for epoch in range(2):
        parts = [[i for e, _, indices in rank_lines if e == epoch for i in indices] for rank_lines in lines]
        assert [len(p) for p in parts] == [10, 10], (epoch, parts)
        assert not set(parts[0]) & set(parts[1]), (epoch, parts)
        assert set(parts[0]) | set(parts[1]) == set(range(20)), (epoch, parts)
    assert [e for e, _, _ in lines[0]] == [0] * 5 + [1] * 5  # the first launch stopped after epoch 0
    print(f"two-node test: {time.monotonic() - started:.1f} s wall")


def _worker(argv: list[str]) -> int:
    """A node's process: ``fastpolicy argv``; with :data:`STOP` first, every rank leaves right
    after the first checkpoint is whole (as if the nodes died there)."""
    if argv and argv[0] == STOP:
        from fastpolicy.train import checkpoint

        real = checkpoint.save_distributed

        def save_then_stop(path, state, loader):
            real(path, state, loader)  # returns on every rank once the file is complete
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        checkpoint.save_distributed = save_then_stop
        argv = argv[1:]
    from fastpolicy.cli import main

    return main(argv)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
