"""``fastpolicy show`` on run folders that are damaged or odd: special files, corrupt or
wrongly-typed JSON, deep nesting, huge CSV fields, a closed pipe, KL rounding noise. Each gives
one clear line, never a hang or a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastpolicy import show
from fastpolicy.show import describe

ROOT = str(Path(__file__).resolve().parent.parent)


def _run(folder: Path, metrics: str = "epoch,train_loss,val_accuracy\n0,1.5,0.5\n", **files) -> Path:
    """A final-training run folder with ``metrics.csv`` and the given files (name → text)."""
    folder.mkdir(exist_ok=True)
    (folder / "run.json").write_text(json.dumps({"fastpolicy_run": "train", "settings": {"epochs": 2}}))
    (folder / "metrics.csv").write_text(metrics)
    for name, text in files.items():
        (folder / name.replace("_json", ".json")).write_text(text)
    return folder


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        **kwargs,
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_the_run_folder_does_not_hang(tmp_path):
    folder = _run(tmp_path / "run")
    os.remove(folder / "metrics.csv")
    os.mkfifo(folder / "metrics.csv")
    os.mkfifo(folder / "summary.json")
    # Reading either FIFO would wait for a writer forever; the child is killed at the timeout.
    done = _python(f"from fastpolicy.show import describe; print(chr(10).join(describe({str(folder)!r})))", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warning   metrics.csv: not a regular file" in done.stdout
    assert "status    unknown: summary.json is not a regular file" in done.stdout


def test_files_over_the_size_cap_are_not_read(tmp_path, monkeypatch):
    folder = _run(tmp_path / "run")
    monkeypatch.setattr(show, "MAX_BYTES", 16)
    out = describe(str(folder))
    assert "warning   metrics.csv: larger than 16 bytes, more than show reads" in out
    assert "warning   run.json: larger than 16 bytes, more than show reads" in out
    assert "progress  0 epoch(s)" in out


def test_a_corrupt_summary_is_named_not_taken_for_unfinished(tmp_path):
    folder = _run(tmp_path / "run", summary_json='{"epochs": [')
    status = next(line for line in describe(str(folder)) if line.startswith("status"))
    assert status.startswith("status    unknown: summary.json is corrupt (Expecting value")
    assert "not finished" not in status


def test_wrong_json_types_give_one_line_each(tmp_path):
    folder = _run(
        tmp_path / "run",
        metrics="epoch,train_loss,val_accuracy,reward/0,reward/x\n0,1.5,0.5,2.0,abc,extra\n",
        summary_json=json.dumps({"preset": "resnet", "config": 3}),
        schedule_json=json.dumps({"epochs": [{"policies": [{"sub_policies": "ShearX"}]}]}),
    )
    (folder / "run.json").write_text(json.dumps({"fastpolicy_run": "adversarial", "settings": [1, 2]}))
    out = describe(str(folder))
    assert "warning   run.json: 'settings' is a list, not a JSON object" in out
    assert "warning   summary.json: 'config' is a int, not a JSON object" in out
    assert "warning   summary.json: 'preset' is a str, not a JSON object" in out
    assert "warning   schedule.json: the last epoch's policy 0 is not a policy" in out
    (folder / "schedule.json").write_text(json.dumps({"epochs": {"0": []}}))
    assert "warning   schedule.json: 'epochs' is a dict, not a JSON array" in describe(str(folder))


def test_deep_nesting_is_corrupt_not_a_recursion_error(tmp_path):
    deep = "[" * 200_000 + "]" * 200_000
    folder = _run(tmp_path / "run", summary_json=deep, schedule_json=deep)
    (folder / "run.json").write_text(deep)
    out = describe(str(folder))
    assert "status    unknown: summary.json is corrupt (JSON nested too deeply), so" in out[2]
    assert "warning   run.json: corrupt (JSON nested too deeply)" in out


def test_a_huge_csv_field_is_one_warning(tmp_path):
    folder = _run(tmp_path / "run", metrics="epoch,train_loss\n0," + "9" * 300_000 + "\n")
    out = describe(str(folder))
    assert any(line.startswith("warning   metrics.csv: corrupt CSV (field larger than field limit") for line in out)


def test_kl_rounding_noise_is_shown_as_zero(tmp_path):
    metrics = "epoch,train_loss,val_accuracy,controller_kl_from_start,controller_entropy\n0,1.5,0.5,-0.0008,50.7\n"
    out = describe(str(_run(tmp_path / "run", metrics=metrics)))
    assert "controller KL from its start 0 nats, entropy 50.7" in out


def test_a_reader_that_stops_early_ends_show_quietly():
    # ``fastpolicy show … | head -1``: the pipe closes while show still writes.
    child = subprocess.Popen(
        [sys.executable, "-c", "from fastpolicy.show import write; write(['a line of show'] * 100_000)"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline() == b"a line of show\n"
    child.stdout.close()
    assert child.wait(timeout=60) == 0
    assert child.stderr.read() == b""
