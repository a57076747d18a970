"""Every number setting has one declared domain, checked alike by its flag, in a config file and
when its config dataclass is built in Python; config files that would explode are refused early."""

from __future__ import annotations

import dataclasses
import math
import time
import typing

import pytest

from fastpolicy.cli import main
from fastpolicy.config import MAX_CONFIG_NODES, _unwrap, field_domain, read_config_file
from fastpolicy.errors import UserError
from fastpolicy.train.adversarial import AdversarialConfig
from fastpolicy.train.aws import AWSConfig
from fastpolicy.train.final import TrainConfig

COMMANDS = {AdversarialConfig: ["search", "adversarial"], AWSConfig: ["search", "aws"], TrainConfig: ["train"]}


def _number_fields():
    for config_class in COMMANDS:
        hints = typing.get_type_hints(config_class)
        for field in dataclasses.fields(config_class):
            kind, _ = _unwrap(hints[field.name])
            domain = field_domain(field, kind)
            if domain is None:
                continue
            width = len(typing.get_args(kind)) if typing.get_origin(kind) is tuple else 1
            bad = [math.nan, math.inf, -math.inf]
            if domain.low >= 0:
                bad.append(-1.0)
            for value in bad:
                yield pytest.param(
                    config_class, field, width, value, id=f"{config_class.__name__}.{field.name}={value}"
                )


NUMBER_FIELDS = list(_number_fields())


def test_every_float_setting_has_a_domain():
    floats = {
        (c.__name__, f.name)
        for c in COMMANDS
        for f in dataclasses.fields(c)
        if "float" in str(typing.get_type_hints(c)[f.name])
    }
    covered = {(p.values[0].__name__, p.values[1].name) for p in NUMBER_FIELDS}
    assert floats and floats <= covered
    assert {"entropy_weight", "controller_lr", "agent_lr", "finetune_lr", "clip", "max_kl"} <= {f for _, f in floats}


@pytest.mark.parametrize("config_class, field, width, value", NUMBER_FIELDS)
def test_a_bad_number_is_refused_in_python_naming_the_field(tmp_path, config_class, field, width, value):
    bad = (value,) * width if width > 1 else value
    with pytest.raises(ValueError, match=rf"^{field.name} "):
        config_class(out=str(tmp_path / "run"), **{field.name: bad})
    assert not (tmp_path / "run").exists()


def _flag(field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


@pytest.mark.parametrize("config_class, field, width, value", NUMBER_FIELDS)
def test_a_bad_number_is_refused_by_flag_and_by_config_file(tmp_path, capsys, config_class, field, width, value):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as exit_:
        main([*COMMANDS[config_class], _flag(field), *[str(value)] * width, "--out", out])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and _flag(field) in err and "Traceback" not in err
    text = f"{field.name}: {[value] * width if width > 1 else value}\n".replace("nan", ".nan").replace("inf", ".inf")
    (tmp_path / "run.yaml").write_text(text)
    assert main([*COMMANDS[config_class], "--config", str(tmp_path / "run.yaml"), "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"run.yaml: {field.name}:" in err, err
    assert not (tmp_path / "run").exists()


def test_a_negative_learning_rate_names_its_key(tmp_path):
    with pytest.raises(ValueError, match=r"^controller_lr must be a finite number ≥ 0, got -0.1$"):  # 0 freezes it
        AdversarialConfig(out=str(tmp_path), controller_lr=-0.1)
    with pytest.raises(ValueError, match=r"^agent_lr must be a finite number > 0, got -1$"):
        AWSConfig(out=str(tmp_path), agent_lr=-1)


@pytest.mark.parametrize(
    "changes, expected",
    [
        (dict(out=["a", "b"]), r"^out must be one text value \(a path or a name\), got \['a', 'b'\] \(a list\)$"),
        (dict(data={"x": 1}), r"^data must be one text value"),
        (dict(entropy_weight="0.1"), r"^entropy_weight is not a finite number ≥ 0 \('0.1', a str\)$"),
        (dict(epochs=2.5), r"^epochs is not an integer \(2.5\)$"),
        (dict(mode="adverserial"), r"^mode must be one of"),
    ],
)
def test_wrong_types_are_refused_in_python_naming_the_field(changes, expected):
    with pytest.raises(ValueError, match=expected):
        AdversarialConfig(**({"out": "run"} | changes))


@pytest.mark.parametrize("value", ["[a, b]", "{a: 1}"])
def test_a_list_or_mapping_where_a_path_is_expected_is_one_line(tmp_path, capsys, value):
    (tmp_path / "run.yaml").write_text(f"out: {value}\n")
    assert main(["train", "--config", str(tmp_path / "run.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run.yaml: out: expected one value" in err
    assert not list(tmp_path.glob("*[[{]*"))


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_while_composing_in_one_short_line(tmp_path, capsys):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # ~500 bytes that expand to 10⁹ values
    start = time.time()
    with pytest.raises(UserError, match=f"expands to more than {MAX_CONFIG_NODES} values") as error:
        read_config_file(str(path))
    assert time.time() - start < 5 and len(str(error.value)) < 400
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 400


def test_recursive_aliases_big_files_and_special_files_are_refused(tmp_path):
    (tmp_path / "loop.yaml").write_text("a: &a [*a]\n")
    with pytest.raises(UserError, match="loop.yaml: not a usable YAML config file"):
        read_config_file(str(tmp_path / "loop.yaml"))
    (tmp_path / "big.yaml").write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(UserError, match="a config file may hold at most"):
        read_config_file(str(tmp_path / "big.yaml"))
    import os

    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(UserError, match="not a regular file"):
        read_config_file(str(tmp_path / "fifo.yaml"))


def test_a_long_value_is_echoed_as_a_short_excerpt(tmp_path, capsys):
    (tmp_path / "run.yaml").write_text("mode: " + "x" * 100_000 + "\n" + "y" * 100_000 + ": 1\n")
    assert main(["search", "adversarial", "--config", str(tmp_path / "run.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 1000
    (tmp_path / "list.yaml").write_text("seed: [" + ", ".join(["1"] * 5000) + "]\n")
    assert main(["train", "--config", str(tmp_path / "list.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 400 and "a list of 5000 items" in err
