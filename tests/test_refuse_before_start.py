"""Runs refuse bad paths, environment variables and policies in one line (exit 2) and leave
nothing in --out; a policy with longer sub-policies gets the slots it needs (issue 37, item 7)."""

from __future__ import annotations

import os

import pytest

from fastpolicy import Policy, PolicySchedule
from fastpolicy.train.final import policy_slots

SMALL = ["--subset", "64", "--val-subset", "64", "--epochs", "1", "--no-progress", "--device", "cpu"]


def _one_line(capsys, argv, expected: str) -> None:
    from fastpolicy.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


def test_an_out_path_the_file_system_refuses_is_one_line(tmp_path, capsys):
    out = tmp_path / ("x" * 300) / "run"
    _one_line(capsys, ["train", *SMALL, "--out", str(out)], "File name too long")
    assert os.listdir(tmp_path) == []


def test_environment_variables_are_named_in_their_errors(tmp_path, capsys, monkeypatch):
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("FASTPOLICY_SAMPLES_SEEN", str(tmp_path / "a_file"))
    _one_line(capsys, ["train", *SMALL, "--out", str(tmp_path / "run")], "FASTPOLICY_SAMPLES_SEEN=")
    assert not (tmp_path / "run").exists()
    monkeypatch.delenv("FASTPOLICY_SAMPLES_SEEN")
    for name, value in (("WORLD_SIZE", "abc"), ("WORLD_SIZE", "-2")):
        monkeypatch.setenv(name, value)
        _one_line(capsys, ["train", *SMALL, "--out", str(tmp_path / "run")], f"environment variable {name}=")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "one")
    _one_line(capsys, ["train", *SMALL, "--out", str(tmp_path / "run")], "environment variable LOCAL_RANK='one'")
    assert not (tmp_path / "run").exists()


def test_a_longer_sub_policy_gets_the_slots_it_needs(tmp_path, capsys):
    from fastpolicy.cli import main

    three = Policy([[("Invert", 0), ("Equalize", 0), ("Rotate", 3)], [("Color", 2)]])
    assert policy_slots(three) == 3 and policy_slots(None) == 2 and policy_slots(Policy([[("Color", 2)]])) == 2
    assert policy_slots(PolicySchedule([[Policy([[("Color", 2)]])], [three]])) == 3  # every epoch's
    three.save(str(tmp_path / "three.json"))
    assert main(["train", *SMALL, "--policy", str(tmp_path / "three.json"), "--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("flag", ["--batch", "--repeats"])
def test_bench_flags_are_refused_in_one_line(flag, capsys):
    from fastpolicy.cli import main

    with pytest.raises(SystemExit) as exited:  # argparse's exit, as for every command's flags
        main(["bench", flag, "0"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and f"argument {flag}: 0 is not positive" in err


def test_a_batch_the_memory_cannot_hold_is_refused_up_front_with_its_figure(monkeypatch):
    import numpy as np

    from fastpolicy.loader import PolicyDALILoader, memory

    images, labels = np.zeros((64, 28, 28), np.uint8), np.zeros(64, np.int64)
    need = memory.batch_bytes(8 * 32, 28, 28, 1, "float32") * memory.IN_FLIGHT
    monkeypatch.setattr(memory, "free_bytes", lambda device: need - 1)
    with pytest.raises(ValueError, match=r"M·N = 256 rows of 1×28×28 \(float32 output\) needs about .* GiB free"):
        PolicyDALILoader.from_arrays(images, labels, 32, M=8, device="cpu")
    monkeypatch.setattr(memory, "free_bytes", lambda device: need)
    PolicyDALILoader.from_arrays(images, labels, 32, M=8, device="cpu")
    assert memory.batch_bytes(2, 3, 4, 3, "uint8") == 2 * 36 * 3  # decoded, augmented, output
    monkeypatch.undo()
    assert 0 < memory.free_bytes("cpu") < 2**50  # this machine's, read from /proc/meminfo


def test_a_cgroup_limits_room_counts_the_page_cache_it_could_drop(tmp_path):
    from fastpolicy.loader import memory

    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("900000\n")
    (tmp_path / "memory.stat").write_text("anon 100000\nfile 800000\ninactive_file 700000\nactive_file 100000\n")
    assert memory._cgroup_free(str(tmp_path)) == 1000000 - 900000 + 700000
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_free(str(tmp_path)) is None
