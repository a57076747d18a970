"""A run's folder is owned: unique default names, refusal to clobber, --overwrite, atomic artefacts,
one CSV header, and a killed run that resumes to the same result."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from fastpolicy.train import checkpoint, rundir
from fastpolicy.train.checkpoint import CheckpointError
from fastpolicy.train.logs import RunLog
from fastpolicy.train.rundir import RunFolderError

SMALL = ["--subset", "256", "--batch", "32", "--M", "2", "--no-progress"]


def cli(*args, cwd=None, check=True):
    """``fastpolicy ...`` in a fresh process, as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "fastpolicy.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_default_names_are_unique_within_a_second(tmp_path):
    names = {rundir.new_run_folder("adversarial", str(tmp_path)) for _ in range(200)}
    assert len(names) == 200 and not any(os.path.exists(n) for n in names)
    assert all(os.path.basename(n).startswith("adversarial-") for n in names)


def test_a_folder_that_holds_files_is_refused_and_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("last week's work\n")
    with pytest.raises(RunFolderError, match="--resume.*--overwrite"):
        rundir.prepare(str(out), "train", resume=False)
    with pytest.raises(RunFolderError, match="not a fastpolicy run folder"):  # --overwrite never deletes it
        rundir.prepare(str(out), "train", resume=False, overwrite=True)
    assert (out / "results.csv").read_text() == "last week's work\n"
    with pytest.raises(RunFolderError, match="pass one of them"):
        rundir.check(str(out), resume=True, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        rundir.check(str(tmp_path / "file"), resume=False)


def test_overwrite_replaces_a_marked_run(tmp_path):
    out = tmp_path / "run"
    rundir.prepare(str(out), "train", resume=False, settings={"seed": 1})
    (out / "old.csv").write_text("old")
    (out / "tensorboard").mkdir()
    rundir.prepare(str(out), "train", resume=False, overwrite=True)
    assert sorted(os.listdir(out)) == [rundir.MARKER]
    assert json.loads((out / rundir.MARKER).read_text())["fastpolicy_run"] == "train"


def test_csv_log_keeps_one_header_and_every_column(tmp_path):
    log = RunLog(str(tmp_path), "metrics", enabled=True)
    log.log(0, {"epoch": 0, "loss": 1.0})
    log.log(1, {"epoch": 1, "loss": 0.5, "reward": [0.1, 0.2]})  # a column that appears later is kept
    log.close()
    resumed = RunLog(str(tmp_path), "metrics", enabled=True)
    resumed.truncate(1)  # resumed after epoch 0: epoch 1 is logged again
    resumed.log(1, {"epoch": 1, "loss": 0.4, "reward": [0.3, 0.4]})
    resumed.close()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,reward/0,reward/1" and sum(line.startswith("epoch") for line in lines) == 1
    rows = list(csv.DictReader(lines))
    assert [r["loss"] for r in rows] == ["1.0", "0.4"] and rows[1]["reward/1"] == "0.4"
    assert sorted(os.listdir(tmp_path)) == ["metrics.csv", "tensorboard"]


pytest.importorskip("nvidia.dali")


@pytest.mark.slow
def test_rerun_into_a_finished_folder_is_refused_from_the_cli(tmp_path):
    out = str(tmp_path / "run")
    cli("search", "adversarial", "--out", out, "--epochs", "1", *SMALL)
    before = {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)}
    done = cli("search", "adversarial", "--out", out, "--epochs", "1", *SMALL, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "--resume" in done.stderr and "--overwrite" in done.stderr
    assert {name: os.path.getmtime(os.path.join(out, name)) for name in os.listdir(out)} == before
    cli("search", "adversarial", "--out", out, "--epochs", "1", *SMALL, "--overwrite")
    assert os.path.getmtime(os.path.join(out, "summary.json")) > before["summary.json"]
    # the default folder: created under ./runs with a unique name, printed
    done = cli("search", "adversarial", "--epochs", "1", *SMALL, cwd=tmp_path)
    assert "results in" in done.stdout and len(os.listdir(tmp_path / "runs")) == 1


def test_resume_refuses_changed_epochs_and_data(tmp_path, photo_tree):
    from fastpolicy.train.final import FinalTraining, TrainConfig

    data = tmp_path / "data"
    shutil.copytree(photo_tree, data / "train")
    shutil.copytree(photo_tree, data / "val")
    config = TrainConfig(
        out=str(tmp_path / "run"),
        preset="imagenet_resnet50",
        data=str(data),
        model="small_cnn",
        epochs=1,
        batch=4,
        device="cpu",
        progress=False,
    )
    FinalTraining(config).run()
    with pytest.raises(CheckpointError, match=r"epochs: 1 → 2.*schedule"):
        FinalTraining(TrainConfig(**{**config.__dict__, "epochs": 2}), resume=True)
    first_class = sorted(os.listdir(data / "train"))[0]
    some_image = sorted(os.listdir(data / "train" / first_class))[0]
    shutil.copy(data / "train" / first_class / some_image, data / "train" / first_class / "added.jpg")
    with pytest.raises(CheckpointError, match=r"the train data differ from the checkpoint's: 20 files .* 21 files"):
        FinalTraining(config, resume=True)


def _weights(out: str) -> dict:
    return checkpoint.load(os.path.join(out, "checkpoint.pt"))["model"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    args = ["search", "adversarial", "--epochs", "3", "--subset", "512", "--batch", "32", "--M", "2", "--no-progress"]
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    cli(*args, "--out", whole)
    process = subprocess.Popen(
        [sys.executable, "-m", "fastpolicy.cli", *args, "--out", killed],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(killed, "checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed mid-run, not finished
    assert checkpoint.load(os.path.join(killed, "checkpoint.pt"))["epoch"] < 3
    cli(*args, "--out", killed, "--resume")
    expected, resumed = _weights(whole), _weights(killed)
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    rows = [json.loads((tmp_path / name / "summary.json").read_text())["epochs"] for name in ("whole", "killed")]
    assert [r["train_loss"] for r in rows[0]] == [r["train_loss"] for r in rows[1]]
    lines = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,")


def test_atomic_files_get_the_usual_permissions(tmp_path):
    from fastpolicy import atomic

    umask = os.umask(0o022)
    try:
        atomic.write_json(str(tmp_path / "a.json"), {"x": 1})
    finally:
        os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
