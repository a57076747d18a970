"""Config files and flags: every setting has a flag, --config sets any, runs record and repeat theirs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from fastpolicy.cli import build_parser, main
from fastpolicy.train.adversarial import AdversarialConfig
from fastpolicy.train.aws import AWSConfig
from fastpolicy.train.final import TrainConfig

TINY = ["--subset", "256", "--epochs", "1", "--M", "2", "--batch", "32", "--no-progress"]


@pytest.mark.parametrize(
    "argv, config_class",
    [(["search", "adversarial"], AdversarialConfig), (["search", "aws"], AWSConfig), (["train"], TrainConfig)],
)
def test_every_config_field_has_a_flag(argv, config_class):
    parser = build_parser()
    args = parser.parse_args(argv)
    for field in dataclasses.fields(config_class):
        assert hasattr(args, field.name), f"{config_class.__name__}.{field.name} has no flag"


def test_aws_settings_without_a_hand_written_flag_are_reachable():
    args = build_parser().parse_args(
        [
            "search",
            "aws",
            "--finetune-schedule",
            "tail",
            "--stage1-augment",
            "none",
            "--clip",
            "0.1",
            "--ppo-steps",
            "3",
            "--max-kl",
            "0.5",
            "--baseline-weight",
            "0.8",
            "--agent-betas",
            "0.9",
            "0.99",
            "--top-k",
            "2",
        ]
    )
    assert (
        args.finetune_schedule,
        args.stage1_augment,
        args.clip,
        args.ppo_steps,
        args.max_kl,
        args.baseline_weight,
        args.agent_betas,
        args.top_k,
    ) == ("tail", "none", 0.1, 3, 0.5, 0.8, [0.9, 0.99], 2)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "aws", "--finetune-schedule", "sometimes"])


def _summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_a_config_file_sets_flags_override_and_the_run_repeats(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("train_subset: 256\nepochs: 1\nM: 2\nbatch: 32\nprogress: false\nseed: 1\n")
    first = tmp_path / "first"
    assert main(["search", "adversarial", "--config", str(config), "--seed", "4", "--out", str(first)]) == 0
    recorded = yaml.safe_load((first / "config.yaml").read_text())
    assert recorded["seed"] == 4 and recorded["train_subset"] == 256 and recorded["M"] == 2  # the flag won
    assert "out" not in recorded and "--config" in (first / "config.yaml").read_text()
    again = tmp_path / "again"
    assert main(["search", "adversarial", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    assert yaml.safe_load((again / "config.yaml").read_text()) == recorded
    numbers = [{k: v for k, v in row.items() if k != "seconds"} for row in _summary(first)["epochs"]]
    assert numbers == [{k: v for k, v in row.items() if k != "seconds"} for row in _summary(again)["epochs"]]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("subset: 3\n", "unknown setting 'subset'"),
        ("M: two\n", "M: 'two' is not an integer"),
        ("M: -1\n", "M: -1 is not positive"),
        ("mode: sideways\n", "mode: 'sideways' is not one of"),
        ("progress: 3\n", "progress: expected true or false"),
        ("- a list\n", "expected a mapping"),
        ("{unclosed\n", "not a readable YAML file"),
    ],
)
def test_a_bad_config_file_is_refused_in_one_line_naming_file_and_key(tmp_path, capsys, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["search", "adversarial", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(config) in err and expected in err
    assert not (tmp_path / "run").exists()


def test_a_missing_config_file_is_named(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: no such file" in capsys.readouterr().err


def test_quiet_and_verbose(tmp_path, capsys):
    assert main(["-q", "search", "adversarial", *TINY, "--out", str(tmp_path / "quiet")]) == 0
    assert "results in" not in capsys.readouterr().out
    assert main(["search", "adversarial", *TINY, "--out", str(tmp_path / "normal")]) == 0
    assert "results in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-q", "-v", "train"])
