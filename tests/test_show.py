"""``fastpolicy show RUN_DIR`` on adversarial, AWS and final-training runs, finished or not."""

from __future__ import annotations

import json
import os

import pytest

from fastpolicy.cli import main

pytest.importorskip("nvidia.dali")

SMALL = dict(train_subset=128, batch=32, device="cpu", progress=False)


def _show(capsys, folder) -> str:
    assert main(["show", str(folder)]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_show_describes_every_kind_of_run(tmp_path, capsys):
    from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch
    from fastpolicy.train.aws import AWSConfig, AWSSearch
    from fastpolicy.train.final import FinalTraining, TrainConfig

    AdversarialSearch(AdversarialConfig(out=str(tmp_path / "adv"), epochs=1, M=2, val_subset=64, **SMALL)).run()
    out = _show(capsys, tmp_path / "adv")
    assert "kind      adversarial (started" in out and "status    finished" in out
    assert "progress  1 epoch(s) of 1" in out and "controller KL from its start" in out and "hardest" in out
    assert "op_distribution.png" in out and "schedule.json" in out

    search = AWSSearch(AWSConfig(out=str(tmp_path / "aws"), stage1_epochs=1, loops=1, val_count=64, **SMALL))
    search.run()
    out = _show(capsys, tmp_path / "aws")
    assert "kind      aws" in out and "stage 1: 1 epoch(s); stage 2: 1 loop(s) of 1" in out and "top pairs" in out

    FinalTraining(
        TrainConfig(
            out=str(tmp_path / "train"), policy=str(tmp_path / "aws" / "policy.json"), epochs=1, val_subset=64, **SMALL
        )
    ).run()
    out = _show(capsys, tmp_path / "train")
    assert "kind      train" in out and "policy=" in out and "held-out accuracy" in out

    os.remove(tmp_path / "train" / "summary.json")  # as a run stopped before its end looks
    hint = f"not finished (resume with: fastpolicy train --out {tmp_path / 'train'} --resume)"
    assert hint in _show(capsys, tmp_path / "train")
    os.remove(tmp_path / "train" / "checkpoint.pt")  # as a run stopped before its first checkpoint looks
    out = _show(capsys, tmp_path / "train")
    assert "resume with" not in out and "stopped before its first checkpoint, nothing to resume" in out
    assert f"fastpolicy train --out {tmp_path / 'train'} --overwrite" in out


def test_show_says_the_settings_of_a_resumed_run(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"fastpolicy_run": "aws", "settings": {"loops": 2, "seed": 0}}))
    (folder / "summary.json").write_text(json.dumps({"config": {"loops": 4, "seed": 0}, "loops": []}))
    (folder / "stage1.csv").write_text("epoch\n")
    out = _show(capsys, folder)
    assert "loops=4" in out and "loops=2" not in out  # resumed with --loops 4: the summary is the newer


def test_runs_recorded_with_the_old_two_word_kind_are_shown_and_resumed(tmp_path, capsys):
    """Before the kind was one word, run.json said ``adversarial-<mode>``."""
    from fastpolicy.train.adversarial import AdversarialConfig, AdversarialSearch

    config = AdversarialConfig(out=str(tmp_path / "old"), mode="random", epochs=1, M=2, val_subset=64, **SMALL)
    AdversarialSearch(config).run()
    marker = tmp_path / "old" / "run.json"
    recorded = json.loads(marker.read_text())
    assert recorded["fastpolicy_run"] == "adversarial"
    marker.write_text(json.dumps(recorded | {"fastpolicy_run": "adversarial-random"}))
    out = _show(capsys, tmp_path / "old")
    assert "kind      adversarial (started" in out and "mode=random" in out
    row = AdversarialSearch(config, resume=True).run()  # finished: resumes to its end at once
    assert row["epoch"] == 0


def test_show_names_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "not a fastpolicy run" in capsys.readouterr().err
