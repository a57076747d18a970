"""Bad flags and paths on the command line: one line naming them, exit status 2; ``--debug``
shows the traceback."""

from __future__ import annotations

import os

import pytest
from conftest import one_line_error

from fastpolicy.cli import main


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["search", "adversarial", "--subset", "-100"], "--subset/--train-subset: -100 is not positive"),
        (["search", "adversarial", "--epochs", "-1"], "--epochs: -1 is not positive"),
        (["search", "adversarial", "--threads", "0"], "--threads/--num-threads: 0 is not positive"),
        (["search", "adversarial", "--batch", "0"], "--batch: 0 is not positive"),
        (["search", "adversarial", "--M", "two"], "--M: 'two' is not an integer"),
        (["search", "aws", "--loops", "0"], "--loops: 0 is not positive"),
        (["search", "aws", "--finetune-lr", "nan"], "--finetune-lr: nan is not"),
        (["train", "--seed", "-1"], "--seed: -1 is not ≥ 0"),
        (["train", "--max-pixels", "0"], "--max-pixels: 0 is not positive"),
        (["reproduce", "dry-run", "--batch", "-2"], "--batch: -2 is not positive"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_bad_numbers_are_refused_in_one_line(capsys, argv, flag):
    one_line_error(capsys, argv, flag)


def test_missing_paths_and_bad_policy_files_are_named(capsys, tmp_path):
    out = str(tmp_path / "run")
    one_line_error(capsys, ["train", "--data", str(tmp_path / "nowhere"), "--out", out], "nowhere", "no such folder")
    bad = tmp_path / "policy.json"
    bad.write_text('{"format": []}')
    one_line_error(capsys, ["train", "--policy", str(bad), "--out", out], "policy.json", "'format' is []")
    one_line_error(capsys, ["search", "adversarial", "--resume", "--out", out], "no run to continue", out)
    assert not os.path.exists(out)  # nothing was created by a refused run


def test_debug_shows_the_traceback(capsys, tmp_path):
    assert main(["--debug", "train", "--policy", str(tmp_path / "none.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("no such file")


@pytest.mark.parametrize("flag", ["-v", "-q", "--debug"])
def test_global_flags_before_bench_reach_it(capsys, flag):
    with pytest.raises(SystemExit) as exited:
        main([flag, "bench", "--help"])
    assert exited.value.code == 0 and "usage: fastpolicy bench" in capsys.readouterr().out


@pytest.mark.parametrize("key", ["quiet", "verbose", "debug"])
def test_a_config_file_cannot_set_command_line_only_switches(capsys, tmp_path, key):
    config = tmp_path / "run.yaml"
    config.write_text(f"{key}: true\n")
    one_line_error(capsys, ["search", "adversarial", "--config", str(config)], f"unknown setting '{key}'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--batch", "0"], "--batch"),
        (["--repeats", "0"], "--repeats"),
        (["--M", "-1"], "--M"),
        (["--tree", "/no/such/tree"], "--tree /no/such/tree"),
        (["--dali-priority", "low"], "--dali-priority"),
    ],
)
def test_bad_bench_flags_are_one_line_with_status_2(argv, named, capsys):
    from fastpolicy.bench import run

    with pytest.raises(SystemExit) as stopped:
        run.main(["--device", "cpu", *argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err and "Traceback" not in err


def test_bench_writes_a_new_folder_by_default_never_the_committed_records():
    import datetime
    import os

    from fastpolicy.bench import run

    when = datetime.datetime(2026, 12, 7, 1, 2, 3, tzinfo=datetime.timezone.utc)
    out = run.default_out("cpu", when)
    assert out == os.path.join("runs", "bench-20261207-010203-cpu", "bench_cpu.json")
    assert not out.startswith(os.path.join("benchmarks", "results"))
    assert run.build_parser().parse_args([]).out is None  # main() then takes default_out
    assert "(default: 3)" in run.build_parser().format_help()  # every flag's default in --help


def test_bench_dali_priority_flag_defaults_to_the_pipeline_setting():
    from fastpolicy.bench import run
    from fastpolicy.loader import Pipeline

    parse = run.build_parser().parse_args
    assert parse([]).dali_priority is Pipeline().dali_priority is None
    assert parse(["--dali-priority", "normal"]).dali_priority == "normal"


def test_config_file_names_are_flags_too():
    from fastpolicy.cli import build_parser

    args = build_parser().parse_args(["train", "--train-subset", "64", "--num-threads", "1"])
    assert args.train_subset == 64 and args.num_threads == 1


@pytest.mark.parametrize("argv", [[], ["-q"], ["search"], ["reproduce"]])
def test_a_bare_command_prints_its_help(argv, capsys):
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: fastpolicy") and ("search" in out or "regime" in out)
