"""Run configuration: every field of a run's config dataclass is a flag, a YAML file can set any.

* :func:`add_field_flags` adds ``--<field-name>`` for each field of a config dataclass
  (``AdversarialConfig``, ``AWSConfig``, ``TrainConfig``) that has no hand-written flag, typed
  from its annotation — so no setting is reachable only from Python;
* :func:`apply_config_file` reads ``--config run.yaml`` (a mapping of field names to values)
  into a command's defaults, so flags given beside it override it; an unknown key, a
  wrong type or a value outside a flag's choices is refused naming the file and the key;
* :func:`write_config` writes the resolved config into the run's folder as ``config.yaml``:
  ``fastpolicy … --config RUN_DIR/config.yaml`` repeats the run (in a new folder: the file
  holds every setting but ``out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from typing import Any

from . import atomic
from .errors import UserError

CONFIG_NAME = "config.yaml"
"""The resolved config in every run folder."""


def _boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _optional(convert):
    def parse(text: str):
        return None if str(text).strip().lower() in ("none", "null", "") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _unwrap(hint) -> tuple[object, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(hint))
    return hint, False


def add_field_flags(parser: argparse.ArgumentParser, config_class, group_title: str = "more settings") -> None:
    """``--<name>`` (underscores as dashes, ``dest`` the field name) for every field of
    ``config_class`` without a flag in ``parser`` yet (``out`` excepted); default: the field's,
    ``choices`` and ``help`` from the field's metadata where it has them."""
    have = {action.dest for action in parser._actions}
    hints = typing.get_type_hints(config_class)
    group = parser.add_argument_group(group_title)
    for field in dataclasses.fields(config_class):
        if field.name in have or field.name == "out":
            continue
        kind, nullable = _unwrap(hints[field.name])
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
        flag = "--" + field.name.replace("_", "-")
        text = field.metadata.get("help", f"config field {field.name}") + f" (default {default!r})"
        if typing.get_origin(kind) is tuple:
            items = typing.get_args(kind)
            group.add_argument(
                flag,
                dest=field.name,
                type=items[0],
                nargs=len(items),
                default=default,
                help=text,
                metavar=field.name.upper(),
            )
            continue
        converters: dict[object, Any] = {bool: _boolean, int: int, float: float}
        convert = converters.get(kind, str)
        group.add_argument(
            flag,
            dest=field.name,
            type=_optional(convert) if nullable else convert,
            default=default,
            help=text,
            choices=field.metadata.get("choices"),
            metavar="true|false" if kind is bool else None,
        )


def read_config_file(path: str) -> dict:
    """The mapping in YAML file ``path``; UserError naming the file otherwise."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError(f"--config {path}: not a readable YAML file ({' '.join(str(error).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise UserError(f"--config {path}: expected a mapping of setting names to values, got {type(data).__name__}")
    return data


def apply_config_file(
    parser: argparse.ArgumentParser, path: str, internal=("help", "config", "resume", "overwrite")
) -> None:
    """Set ``parser``'s defaults from the config file ``path`` (flags then override them)."""
    data = read_config_file(path)
    actions = {
        action.dest: action
        for action in parser._actions
        if action.dest not in internal and action.dest != argparse.SUPPRESS
    }
    values = {}
    for key, value in data.items():
        action = actions.get(key)
        if action is None:
            raise UserError(
                f"--config {path}: unknown setting {key!r}; this command's settings: {', '.join(sorted(actions))}"
            )
        values[key] = _checked(action, value, f"--config {path}: {key}")
    parser.set_defaults(**values)


def _checked(action: argparse.Action, value, where: str):
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    convert: Any = action.type or (lambda v: v)
    try:
        if isinstance(action.nargs, int) or action.nargs in ("+", "*"):
            if not isinstance(value, (list, tuple)) or (isinstance(action.nargs, int) and len(value) != action.nargs):
                raise UserError(f"{where}: expected a list of {action.nargs} values, got {value!r}")
            value = [convert(str(v)) for v in value]
        else:
            value = convert(str(value) if not isinstance(value, str) else value)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
        raise UserError(f"{where}: {error}") from None
    if action.choices is not None and value not in action.choices:
        raise UserError(f"{where}: {value!r} is not one of {list(action.choices)}")
    return value


def write_config(folder: str, config, command: str) -> str:
    """``folder/config.yaml``: every field of ``config`` but ``out`` (atomic)."""
    import yaml

    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items() if k != "out"}
    text = (
        f"# The resolved settings of this run; repeat it (in a new folder) with\n"
        f"#   {command} --config {os.path.join(folder, CONFIG_NAME)}\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )
    path = os.path.join(folder, CONFIG_NAME)
    atomic.write_text(path, text)
    return path


__all__ = ["CONFIG_NAME", "add_field_flags", "apply_config_file", "read_config_file", "write_config"]
