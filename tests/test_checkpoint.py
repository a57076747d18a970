"""Checkpoints: the NVRTC buffer that corrupted the process, atomic writes, loading that never runs code."""

from __future__ import annotations

import io
import os
import pickle
import random

import numpy as np
import pytest
import torch

from fastpolicy.train import checkpoint
from fastpolicy.train.checkpoint import CheckpointError


def test_compiling_the_kernels_leaves_the_process_bytes_alone():
    """NVRTC writes its log's NUL into the buffer it is given; a clean compile's log has size 1,
    and ``b" " * 1`` is CPython's one shared b" " — writing it made b" " == b"\\x00" for the
    whole process, and torch.load then read every stored 32 as 0."""
    pytest.importorskip("cuda.bindings.nvrtc")
    from fastpolicy.backends.kernel_build import nvrtc_compile

    ptx, log = nvrtc_compile("sm_80")
    assert log == "" and b".entry fp_apply" in ptx
    assert bytes([32]) == b" " and b" " != b"\x00"
    tensor = torch.arange(32, dtype=torch.float32)
    buffer = io.BytesIO()
    torch.save({"w": tensor, "n": 32}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert torch.equal(loaded["w"], tensor) and loaded["n"] == 32


def test_save_is_atomic_and_keeps_the_last_good_file(tmp_path, monkeypatch):
    path = str(tmp_path / "state.pt")
    checkpoint.save(path, {"w": torch.ones(3)})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(checkpoint.load(path)["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["state.pt"]  # no temporary file left behind


def test_numpy_values_and_rng_states_round_trip_through_weights_only(tmp_path):
    random.seed(3)
    np.random.seed(4)
    state = {
        "theta": [np.arange(3.0), np.ones((2, 2))],
        "loss": np.float64(0.25),
        "n": np.int64(7),
        "rng": np.random.default_rng(5).bit_generator.state,
        "rng_state": checkpoint.rng_state(),
        "betas": (0.5, 0.999),
    }
    expected = (random.random(), np.random.rand(), torch.rand(1))
    path = str(tmp_path / "c.pt")
    checkpoint.save(path, state)
    loaded = checkpoint.load(path)
    np.testing.assert_array_equal(np.asarray(loaded["theta"][1]), np.ones((2, 2)))
    assert loaded["loss"] == 0.25 and type(loaded["loss"]) is float and loaded["n"] == 7
    assert loaded["betas"] == (0.5, 0.999)
    generator = np.random.default_rng()
    generator.bit_generator.state = loaded["rng"]
    assert generator.random() == np.random.default_rng(5).random()
    random.random(), np.random.rand(), torch.rand(1)  # move every generator on
    checkpoint.set_rng_state(loaded["rng_state"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_crafted_pickle_is_refused_naming_the_file_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {}, "payload": _Exploit()}, path)  # a real checkpoint file carrying code
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt.*could run code.*refused"):
        checkpoint.load(str(path))
    assert not (tmp_path / "pwned").exists()
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Exploit()))  # a bare pickle, not even a torch archive
    with pytest.raises(CheckpointError, match=r"raw\.pt"):
        checkpoint.load(str(raw))
    assert not (tmp_path / "pwned").exists()


def test_missing_and_garbage_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        checkpoint.load(str(tmp_path / "none.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable fastpolicy checkpoint"):
        checkpoint.load(str(bad))


def test_a_resume_restores_every_global_rng_it_saved(tmp_path):
    """save_distributed → scramble → restore_distributed: the next draws of Python's, NumPy's and
    torch's global generators (and the loader's position) are those the saving process would have made."""

    class Loader:
        def __init__(self) -> None:
            self.position = {"step": 7}

        def state_dict(self):
            return dict(self.position)

        def load_state_dict(self, state):
            self.position = dict(state)

    def draws():
        return random.random(), float(np.random.random()), float(torch.rand(1))

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    path = str(tmp_path / "checkpoint.pt")
    checkpoint.save_distributed(path, {"epoch": 4}, Loader())
    expected = draws()
    random.seed(11), np.random.seed(12), torch.manual_seed(13)  # what a fresh process would start from
    resumed = Loader()
    resumed.position = {"step": 0}
    checkpoint.restore_distributed(checkpoint.load(path), path, resumed)
    assert draws() == expected and resumed.position == {"step": 7}
