"""The ImageNet dry run's verdict: OK on finite, sane losses; else diverged, naming the loss,
where, and whether it was non-finite, exploding or skipped."""

from __future__ import annotations

import math

import pytest

from fastpolicy.reproduce.dry_run import EXPLODING, Verdict, judge, logged_rows, verdict


def _row(**values) -> dict:
    return {"epoch": 0, "lr": 0.8, "train_accuracy": 0.25, "skipped_steps": 0, **values}


def test_finite_losses_are_ok():
    result = verdict([("epoch 0", _row(train_loss=1.5, val_loss=2.0)), ("epoch 1", _row(train_loss=1.2))], 4)
    assert result.ok and str(result).startswith("OK: 3 logged losses")
    assert "train_loss 1.2 at epoch 1" in result.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, "nan"])
def test_a_non_finite_loss_is_named_with_its_row(bad):
    rows = [("epoch 0", _row(train_loss=1.5, val_loss=2.0)), ("epoch 1", _row(train_loss=1.4, val_loss=bad))]
    result = verdict(rows, 4)
    assert not result.ok
    assert str(result).startswith("diverged: val_loss is ") and result.reason.endswith("at epoch 1 (non-finite)")


def test_an_exploding_loss_is_named_with_the_limit():
    # The case: lr 0.8 at batch 4 gave a training loss of 97 and a val_loss of 3e11 (4 classes).
    result = verdict([("epoch 0", _row(train_loss=97.0, val_loss=3e11))], 4)
    assert not result.ok
    limit = EXPLODING * math.log(4)
    assert result.reason == (
        f"train_loss is 97 at epoch 0 (exploding: above {EXPLODING:g} × ln(4) = {limit:.3g}, "
        f"the chance level times {EXPLODING:g})"
    )
    assert verdict([("epoch 0", _row(train_loss=0.99 * limit))], 4).ok
    # The controller's REINFORCE loss is no cross-entropy: only its finiteness is judged.
    assert verdict([("epoch 0", _row(train_loss=1.0, controller_loss=-2 * limit))], 4).ok
    assert not verdict([("epoch 0", _row(train_loss=1.0, controller_loss=math.nan))], 4).ok


def test_skipped_steps_are_a_divergence():
    result = verdict([("epoch 0", _row(train_loss=1.5, skipped_steps="3"))], 4)
    assert result == Verdict(False, "3 training step(s) had a non-finite loss at epoch 0 and were skipped")


def test_nothing_to_judge_and_bad_classes_raise():
    with pytest.raises(ValueError, match="no logged row has a loss"):
        verdict([("epoch 0", {"epoch": "0", "val_accuracy": "0.5"})], 4)
    with pytest.raises(ValueError, match="classes must be an integer ≥ 2, got 1"):
        verdict([("epoch 0", _row(train_loss=1.0))], 1)


def test_judge_reads_stage1_then_loops_from_the_csv_logs(tmp_path, caplog):
    (tmp_path / "stage1.csv").write_text("epoch,train_loss,val_loss\n0,1.4,1.6\n")
    (tmp_path / "metrics.csv").write_text("loop,reward,train_loss,top1_pair\n0,0.5,inf,ShearX@3+Invert\n")
    rows = logged_rows(str(tmp_path))
    assert [where for where, _ in rows] == ["stage 1 epoch 0", "loop 0"]
    with caplog.at_level("INFO", logger="fastpolicy"):
        result = judge(str(tmp_path), 4)
    assert str(result) == "diverged: train_loss is inf at loop 0 (non-finite)"
    assert "fastpolicy: dry run verdict: diverged: train_loss is inf at loop 0" in caplog.text


@pytest.mark.parametrize(("verdict", "status"), [("OK: 2 logged losses", 0), ("diverged: train_loss is nan", 1)])
def test_the_dry_run_command_exits_1_on_a_diverged_verdict(monkeypatch, tmp_path, verdict, status):
    from fastpolicy import cli
    from fastpolicy.reproduce import dry_run

    monkeypatch.setattr(dry_run, "dry_run", lambda *args, **kwargs: {"verdict": verdict})
    argv = ["reproduce", "dry-run", "--preset", "imagenet_resnet50", "--device", "cpu", "--out", str(tmp_path)]
    assert cli.main(argv) == status
