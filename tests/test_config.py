"""Config files and flags: every setting has a flag, --config sets any, runs record and repeat theirs."""

from __future__ import annotations

import argparse
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


def _command(parser: argparse.ArgumentParser, *words: str) -> argparse.ArgumentParser:
    for word in words:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


@pytest.mark.parametrize(
    "text",
    [
        "subset: 3\nthreads: 4\non-bad: skip\naws-parameterization: joint\nval: 8\nno-progress: true\n",
        "train_subset: 3\nnum_threads: 4\non_bad: skip\nparameterization: joint\nval_count: 8\nprogress: false\n",
    ],
    ids=["flag-names", "field-names"],
)
def test_config_file_keys_are_flag_names_or_field_names(tmp_path, text):
    from fastpolicy.config import apply_config_file

    path = tmp_path / "run.yaml"
    path.write_text(text)
    parser = build_parser()
    apply_config_file(_command(parser, "search", "aws"), str(path))
    args = parser.parse_args(["search", "aws"])
    settings = (args.train_subset, args.num_threads, args.on_bad, args.parameterization, args.val_count, args.progress)
    assert settings == (3, 4, "skip", "joint", 8, False)


def _help(argv) -> str:
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return text.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "adversarial"],
        ["search", "aws"],
        ["train"],
        ["reproduce", "adversarial"],
        ["reproduce", "table4"],
        ["reproduce", "aws"],
        ["reproduce", "proxy"],
        ["reproduce", "dry-run"],
    ],
)
def test_every_flag_has_a_help_line_with_its_default_and_no_markup(argv):
    for action in _command(build_parser(), *argv)._actions:
        if action.dest in ("help", "verbosity", "debug"):
            continue
        assert action.help and "config field" not in action.help, action.dest
        assert "(default: " in action.help, action.dest
    text = _help(argv)
    assert "``" not in text and ":mod:" not in text and ":class:" not in text
    assert "``" not in _help([]) and ":mod:" not in _help([])


def test_verbosity_after_the_command():
    assert build_parser().parse_args(["search", "adversarial", "-q"]).verbosity == -1
    assert build_parser().parse_args(["-v", "search", "aws"]).verbosity == 1
    assert build_parser().parse_args(["train", "-v"]).verbosity == 1
    assert build_parser().parse_args(["train"]).verbosity == 0
    assert build_parser().parse_args(["reproduce", "dry-run", "-q"]).verbosity == -1


def test_a_config_file_sets_flags_override_and_the_run_repeats(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("train_subset: 256\nepochs: 1\nM: 2\nbatch: 32\nprogress: false\nseed: 1\n")
    first = tmp_path / "first"
    assert main(["search", "adversarial", "--config", str(config), "--seed", "4", "--out", str(first)]) == 0
    recorded = yaml.safe_load((first / "config.yaml").read_text())
    assert recorded["seed"] == 4 and recorded["train_subset"] == 256 and recorded["M"] == 2  # the flag won
    # resolved: the preset's values, not null
    assert (recorded["epochs"], recorded["model"], recorded["val_subset"]) == (1, "small_cnn", 2000)
    assert "out" not in recorded and "--config" in (first / "config.yaml").read_text()
    again = tmp_path / "again"
    assert main(["search", "adversarial", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    assert yaml.safe_load((again / "config.yaml").read_text()) == recorded
    numbers = [{k: v for k, v in row.items() if k != "seconds"} for row in _summary(first)["epochs"]]
    assert numbers == [{k: v for k, v in row.items() if k != "seconds"} for row in _summary(again)["epochs"]]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("subst: 3\n", "unknown setting 'subst'"),
        ("M: two\n", "M: 'two' is not an integer"),
        ("M: -1\n", "M: -1 is not positive"),
        ("mode: sideways\n", "mode: 'sideways' is not one of"),
        ("progress: 3\n", "progress: expected true or false"),
        ("- a list\n", "expected a mapping"),
        ("{unclosed\n", "not a usable YAML config file"),
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


@pytest.mark.slow
def test_aws_config_yaml_records_the_stages_and_repeats(tmp_path):
    first = tmp_path / "first"
    small = ["--subset", "128", "--val", "64", "--stage1-epochs", "1", "--loops", "1", "--batch", "32", "--no-progress"]
    assert main(["-q", "search", "aws", *small, "--out", str(first)]) == 0
    recorded = yaml.safe_load((first / "config.yaml").read_text())
    assert (
        recorded["finetune_epochs"] == 1
        and recorded["agent_lr"] == 0.1
        and recorded["parameterization"] == "factorized"
    )
    assert recorded["finetune_lr"] == pytest.approx(0.05 * 32 / 64 * 0.1)  # the preset's lr, scaled with --batch
    again = tmp_path / "again"
    assert main(["-q", "search", "aws", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    assert yaml.safe_load((again / "config.yaml").read_text()) == recorded
    assert json.loads((first / "policy.json").read_text()) == json.loads((again / "policy.json").read_text())
    # resumed with its own (resolved) config.yaml: the same settings as the checkpoint's unresolved ones
    assert (
        main(
            [
                "-q",
                "search",
                "aws",
                "--config",
                str(first / "config.yaml"),
                "--loops",
                "2",
                "--resume",
                "--out",
                str(first),
            ]
        )
        == 0
    )


def test_quiet_and_verbose(tmp_path, capsys):
    assert main(["search", "adversarial", "-q", *TINY, "--out", str(tmp_path / "quiet")]) == 0
    captured = capsys.readouterr()
    assert "results in" not in captured.out and "\r" not in captured.err
    assert main(["search", "adversarial", *TINY, "--out", str(tmp_path / "normal")]) == 0
    assert "results in" in capsys.readouterr().out
    assert main(["search", "adversarial", "-v", *TINY, "--out", str(tmp_path / "verbose")]) == 0
    out = capsys.readouterr().out
    assert "adversarial run in" in out and "device cpu" in out and "wrote checkpoint" in out and "loaders:" in out
    assert main(["train", *TINY, "--out", str(tmp_path / "bars")]) == 0  # bars asked for, stderr not a terminal
    assert "\r" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-q", "-v", "train"])


def test_a_key_given_twice_is_refused_in_yaml_and_json(tmp_path):
    """YAML and JSON keep the last of two equal keys silently; a config or policy file that says
    two things is refused, naming the key (YAML's ``<<`` merge keeps its meaning)."""
    from fastpolicy.config import read_config_file
    from fastpolicy.errors import UserError
    from fastpolicy.jsonio import PolicyFormatError, parse_json

    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\nlr: 0.1\nepochs: 5\n")
    with pytest.raises(UserError, match=r"key 'epochs' appears twice \(line 3\)"):
        read_config_file(str(path))
    path.write_text("base: &b {lr: 0.1, epochs: 3}\nrun: {<<: *b, epochs: 5}\n")
    assert read_config_file(str(path))["run"] == {"lr": 0.1, "epochs": 5}
    with pytest.raises(PolicyFormatError, match="policy.json: not valid JSON: key 'space' appears twice"):
        parse_json('{"space": "a", "sub": {"x": 1}, "space": "b"}', "policy.json")
    assert parse_json('{"a": {"x": 1}, "b": {"x": 2}}') == {"a": {"x": 1}, "b": {"x": 2}}
