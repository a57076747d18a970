"""Checkpoints: atomic, read back before they replace the last good one."""

from __future__ import annotations

import pytest
import torch

from fastpolicy.train import checkpoint


def test_a_checkpoint_that_does_not_load_back_is_rewritten_then_refused(tmp_path, monkeypatch):
    path = str(tmp_path / "state.pt")
    checkpoint.save(path, {"w": torch.ones(3)})
    real_load, calls = torch.load, []

    def flaky(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError("record size does not match")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", flaky)
    checkpoint.save(path, {"w": torch.zeros(3)})
    assert len(calls) == 2 and all(c.endswith(".tmp") for c in calls)
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("broken")))
    with pytest.raises(RuntimeError, match=r"state\.pt\.tmp does not load back after 2 writes"):
        checkpoint.save(path, {"w": torch.full((3,), 7.0)})
    monkeypatch.setattr(torch, "load", real_load)
    assert torch.equal(checkpoint.load(path)["w"], torch.zeros(3))  # the last good checkpoint is kept
