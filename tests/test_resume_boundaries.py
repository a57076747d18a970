"""A run stopped right after any checkpoint it writes, then resumed, ends bit-equal to a run never
stopped; ``fastpolicy show`` calls it finished only once it is.

Every checkpoint write is a boundary: the tests stop a run by raising right after the n-th
write (``checkpoint.save`` wrapped), resume it, and compare every logged number but the timings
with the uninterrupted run's. Runs are tiny (128 training images, 1–2 epochs) but whole.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("nvidia.dali")

from fastpolicy import show
from fastpolicy.train import checkpoint
from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch
from fastpolicy.train.aws import AWSConfig, AWSSearch
from fastpolicy.train.final import FinalTraining, TrainConfig


class Stopped(Exception):
    """Raised right after a checkpoint write: the process 'dies' there."""


def _stop_after(monkeypatch, writes: int) -> list[str]:
    """Make the ``writes``-th checkpoint write raise :class:`Stopped` once it is complete; the
    returned list collects the names written."""
    real, names = checkpoint.save, []

    def save(path, state):
        real(path, state)
        names.append(str(path).rsplit("/", 1)[-1])
        if len(names) == writes:
            raise Stopped(path)

    monkeypatch.setattr(checkpoint, "save", save)
    return names


def _numbers(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _status(folder) -> str:
    return next(line for line in show.describe(str(folder)) if line.startswith("status"))


def _aws(out, **changes) -> AWSConfig:
    settings = dict(
        out=str(out),
        stage1_epochs=2,
        loops=2,
        finetune_epochs=1,
        train_subset=128,
        val_count=64,
        batch=32,
        progress=False,
        device="cpu",
    )
    return AWSConfig(**(settings | changes))


AWS_WRITES = ["stage1.pt", "stage1.pt", "shared.pt", "checkpoint.pt", "checkpoint.pt"]


@pytest.fixture(scope="module")
def aws_whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("aws-whole")
    with pytest.MonkeyPatch.context() as patch:
        names = _stop_after(patch, -1)
        search = AWSSearch(_aws(out))
        search.run()
    assert names == AWS_WRITES
    return out, search


@pytest.mark.slow
@pytest.mark.parametrize("writes", range(1, len(AWS_WRITES) + 1), ids=lambda n: f"after-{AWS_WRITES[n - 1]}-{n}")
def test_an_aws_search_stopped_after_any_checkpoint_resumes_bit_equal(tmp_path, monkeypatch, aws_whole, writes):
    whole_out, whole = aws_whole
    _stop_after(monkeypatch, writes)
    with pytest.raises(Stopped):
        AWSSearch(_aws(tmp_path)).run()
    monkeypatch.undo()
    assert _status(tmp_path).startswith("status    not finished")  # a stage-1 summary is not a finished run
    resumed = AWSSearch(_aws(tmp_path), resume=True)
    resumed.run()
    assert _numbers(resumed.stage1.history) == _numbers(whole.stage1.history)
    assert _numbers(resumed.history) == _numbers(whole.history)
    assert (tmp_path / "policy.json").read_text() == (whole_out / "policy.json").read_text()
    summaries = [json.loads((folder / "summary.json").read_text()) for folder in (whole_out, tmp_path)]
    assert [_numbers(s["loops"]) for s in summaries] == [_numbers(summaries[0]["loops"])] * 2
    assert _status(tmp_path) == "status    finished"


def _stopped_and_resumed(kind, config, writes: int, monkeypatch):
    _stop_after(monkeypatch, writes)
    with pytest.raises(Stopped):
        kind(config).run()
    monkeypatch.undo()
    assert _status(config.out).startswith("status    not finished")
    resumed = kind(config, resume=True)
    resumed.run()
    assert _status(config.out) == "status    finished"
    return resumed


@pytest.mark.slow
@pytest.mark.parametrize("writes", [1, 2])
def test_a_training_stopped_after_any_checkpoint_resumes_bit_equal(tmp_path, monkeypatch, writes):
    settings = dict(
        epochs=2, train_subset=128, val_subset=64, batch=32, progress=False, device="cpu", policy="randaugment", M=2
    )
    whole = FinalTraining(TrainConfig(out=str(tmp_path / "whole"), **settings))
    whole.run()
    resumed = _stopped_and_resumed(
        FinalTraining, TrainConfig(out=str(tmp_path / "cut"), **settings), writes, monkeypatch
    )
    assert _numbers(resumed.history) == _numbers(whole.history)


@pytest.mark.slow
@pytest.mark.parametrize("writes", [1, 2])
def test_an_adversarial_search_stopped_after_any_checkpoint_resumes_bit_equal(tmp_path, monkeypatch, writes):
    settings = dict(epochs=2, train_subset=128, val_subset=64, batch=32, M=2, progress=False, device="cpu")
    whole = AdversarialSearch(AdversarialConfig(out=str(tmp_path / "whole"), **settings))
    whole.run()
    config = AdversarialConfig(out=str(tmp_path / "cut"), **settings)
    resumed = _stopped_and_resumed(AdversarialSearch, config, writes, monkeypatch)
    assert _numbers(resumed.history) == _numbers(whole.history)
    assert (tmp_path / "cut" / "schedule.json").read_text() == (tmp_path / "whole" / "schedule.json").read_text()
