"""Careless and unlucky starts, each one clear line naming the file or setting: a resume of another
kind of run, a resume without its flags, Ctrl-C, a full disk, a read-only folder, a schedule with
more policies than copies, a run refused after its folder was made (it leaves nothing)."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
from conftest import one_line_error

from fastpolicy import atomic
from fastpolicy.cli import main
from fastpolicy.errors import DiskFullError
from fastpolicy.train import rundir

TINY = ["--subset", "128", "--batch", "32", "--no-progress", "--device", "cpu"]


def _files(folder) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files}


def test_resuming_a_run_of_another_kind_says_which_kind_it_is(tmp_path, capsys):
    rundir.prepare(str(tmp_path / "run"), "aws", resume=False, settings={f"field{i}": i for i in range(100)})
    out = str(tmp_path / "run")
    one_line_error(
        capsys,
        ["search", "adversarial", "--out", out, "--resume"],
        f"{out} holds an aws run, not an adversarial run; continue it with: fastpolicy search aws --out {out} --resume",
    )
    one_line_error(capsys, ["train", "--out", out, "--resume"], "holds an aws run, not a train run")


def test_a_read_only_run_folder_is_one_line(tmp_path, capsys, monkeypatch):
    import tempfile

    def refused(*_, **__):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    one_line_error(capsys, ["train", "--out", str(tmp_path / "new")], "is not writable (Read-only file system)")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text('{"fastpolicy_run": "train"}')
    one_line_error(capsys, ["train", "--out", str(tmp_path / "old"), "--resume"], "the run folder is not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_folder_without_write_permission_is_one_line(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "run.json").write_text('{"fastpolicy_run": "train"}')
    os.chmod(tmp_path / "old", 0o500)
    try:
        one_line_error(capsys, ["train", "--out", str(tmp_path / "old"), "--resume"], "not writable")
    finally:
        os.chmod(tmp_path / "old", 0o700)


def test_a_full_disk_is_named_and_keeps_the_last_file(tmp_path):
    atomic.write_text(str(tmp_path / "a.json"), "old")

    def full(handle):
        handle.write("new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=r"a\.json: no space left on the device"):
        atomic.atomic_write(str(tmp_path / "a.json"), full, mode="w")
    assert (tmp_path / "a.json").read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_a_schedule_with_more_policies_than_copies_is_refused(tmp_path):
    from fastpolicy.policy import Policy
    from fastpolicy.schedule import PolicySchedule
    from fastpolicy.train.final import TrainConfig

    rng = np.random.default_rng(0)
    path = str(tmp_path / "schedule.json")
    PolicySchedule([[Policy.random(rng) for _ in range(8)]]).save(path)
    with pytest.raises(ValueError, match=r"schedule.json: M 4 with a schedule whose epochs hold 8 policies each"):
        TrainConfig(out=str(tmp_path / "run"), policy=path, M=4).resolved_preset()
    assert TrainConfig(out=str(tmp_path / "run"), policy=path, M=16).resolved_preset().M == 16
    assert TrainConfig(out=str(tmp_path / "run"), policy=path).resolved_preset().M == 8


def test_the_bad_image_hint_names_the_flag(tmp_path):
    from fastpolicy.data.files import BadImageError, check_files, scan_folder

    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(BadImageError, match=r"pass --on-bad skip \(on_bad='skip' in Python\)"):
        check_files(scan_folder(str(tmp_path / "train")), verify="header")


pytest.importorskip("nvidia.dali")


def test_a_run_refused_after_its_folder_was_made_leaves_nothing(tmp_path, monkeypatch):
    from fastpolicy.train import final

    def bad_data(*_, **__):
        raise ValueError("the data are bad")

    monkeypatch.setattr(final, "run_loaders", bad_data)
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        with pytest.raises(ValueError, match="the data are bad"):
            final.FinalTraining(final.TrainConfig(out=str(out)))
        assert not os.path.exists(out) if out.name == "new" else os.listdir(out) == []


@pytest.mark.slow
def test_resume_reads_the_runs_settings_and_refuses_only_what_differs(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["search", "aws", "--stage1-epochs", "1", "--loops", "1", "--val", "64", *TINY, "--out", out]
    assert main(args) == 0
    finished = _files(out)
    assert main(["search", "aws", "--out", out, "--resume", "--loops", "2"]) == 0  # no flag repeated
    assert len(json.loads((tmp_path / "run" / "summary.json").read_text())["loops"]) == 2
    capsys.readouterr()
    before = _files(out)
    assert finished <= before
    err = one_line_error(capsys, ["search", "aws", "--out", out, "--resume", "--seed", "5"], "(seed: 0 → 5)")
    assert "learning-rate" not in (err or "")
    assert _files(out) == before  # a refused resume adds nothing (no TensorBoard file)


@pytest.mark.slow
def test_ctrl_c_is_one_line_with_the_resume_command(tmp_path, capsys, monkeypatch):
    from fastpolicy.train import loop

    real, calls = loop.train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # in the second epoch, after the first one's checkpoint
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    out = str(tmp_path / "run")
    assert main(["train", "--epochs", "2", "--val-subset", "64", *TINY, "--out", out]) == 130
    err = capsys.readouterr().err
    assert err == f"fastpolicy: interrupted; resume with: fastpolicy train --out {out} --resume\n"
    assert main(["train", "--out", out, "--resume"]) == 0  # as printed
    assert len(json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"]) == 2


@pytest.mark.slow
def test_a_full_disk_during_a_run_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    def full(*_, **__):
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0: file write failed")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: type("Usage", (), {"free": 0})())
    one_line_error(
        capsys,
        ["train", "--epochs", "1", "--val-subset", "64", *TINY, "--out", str(tmp_path / "run")],
        "checkpoint.pt: no space left on the device",
    )


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            dict(train_subset=16),
            r"^the training subset holds 16 images, 16 — fewer than one batch of 32: raise --subset",
        ),
        (
            dict(val_subset=1, shard=(0, 2)),
            r"^the validation subset holds 1 image\(s\), none for process 0 of 2: raise",
        ),
    ],
)
def test_a_too_small_subset_names_the_subset(changes, expected):
    from fastpolicy.train.data import build_loaders

    settings = dict(train_subset=256, val_subset=64, shard=(0, 1)) | changes
    with pytest.raises(ValueError, match=expected):
        build_loaders(None, 32, 1, 28, "cpu", 0, **settings)


def test_a_too_small_subset_from_the_command_line_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "run")
    one_line_error(capsys, ["train", "--subset", "16", "--batch", "32", "--out", out], "the training subset holds 16")
    assert not os.path.exists(out)  # refused after the folder was made: nothing left


def test_the_command_line_imports_nothing_heavy_before_its_handler():
    """``import fastpolicy.cli`` (what the console script and ``python -m fastpolicy`` do before
    ``main`` runs) imports neither torch nor numpy: Ctrl-C during those imports would escape ``main``."""
    import subprocess
    import sys

    code = "import sys, fastpolicy.cli; print(sorted({'torch', 'numpy', 'nvidia.dali'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_ctrl_c_while_the_command_line_starts_is_one_line(tmp_path, delay):
    """A real SIGINT once ``main`` is entered — while torch, NumPy or DALI are being imported (an
    interrupted import used to leave NumPy half-built, or abort in a C++ callback) or the run is
    being set up: one line, status 130."""
    import signal
    import subprocess
    import sys
    import time

    code = (  # "ready" once main is running (the console script enters it right after its import)
        "import sys, fastpolicy.cli as cli\n"
        "real = cli._main\n"
        "def entered(*args):\n"
        "    sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
        "    return real(*args)\n"
        "cli._main = entered\n"
        f"sys.exit(cli.main(['search', 'adversarial', '--out', {str(tmp_path / 'run')!r}]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stderr is not None and process.stderr.readline() == "ready\n"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    if process.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("fastpolicy: interrupted"), stderr
