"""Run configuration: every field of a config dataclass is a flag, a YAML file can set any.

* :func:`setting` declares a field with what its flag needs in the field's metadata: a
  help line, the flag's name and aliases (``--subset`` for ``train_subset``), choices,
  a checked type (:func:`positive_int` …), how its default reads in ``--help``;
* :func:`add_field_flags` adds a flag for each field of a config dataclass
  (``AdversarialConfig``, ``AWSConfig``, ``TrainConfig``, the studies' options), so the
  command line is generated and no setting is reachable only from Python;
* :func:`apply_config_file` reads ``--config run.yaml`` (a mapping of setting names to values;
  a name is a flag's, with or without its dashes, or the field's) into a command's defaults, so
  flags given beside it override it; an unknown key, a wrong type or a value outside a flag's
  choices is refused naming the file and the key;
* :func:`write_config` writes a run's resolved config (the preset's values filled in) into
  its folder as ``config.yaml``: ``fastpolicy … --config RUN_DIR/config.yaml`` repeats the run
  (in a new folder: the file holds every setting but ``out``).
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


# -- checked flag types ---------------------------------------------------------------------


def _number(kind, minimum, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not value >= minimum or value != value:
        raise argparse.ArgumentTypeError(f"{text} is not {'positive' if minimum > 0 else f'≥ {minimum}'}")
    return value


def positive_int(text: str) -> int:
    """Flag type: an integer ≥ 1."""
    return _number(int, 1, text)


def nonnegative_int(text: str) -> int:
    """Flag type: an integer ≥ 0."""
    return _number(int, 0, text)


def positive_float(text: str) -> float:
    """Flag type: a finite number > 0."""
    value = _number(float, 0, text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive finite number")
    return value


def level(text: str) -> int:
    """Flag type: an integer level in 0..255."""
    value = _number(int, 0, text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"{text} is not a level in 0..255")
    return value


def fraction(text: str) -> float:
    """Flag type: a number in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


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


# -- declaring a setting --------------------------------------------------------------------


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    choices=None,
    type=None,
    metavar: str | None = None,
    shown: str | None = None,
    switch: bool | None = None,
    flag_default: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field whose flag :func:`add_field_flags` generates.

    Args:
        default: the field's default (a tuple is stored as is; fields are frozen-safe).
        help: the flag's help line (plain text; ``--help`` appends the default).
        flag: the flag's name (default ``--<field-name>``, underscores as dashes).
        aliases: more names for the flag (each is also a config-file key).
        choices: the values allowed.
        type: a converter from the flag's text (default from the annotation: int, float,
            str, or true|false for a bool); None is accepted as ``none`` where the field may be None.
        metavar: the value's name in ``--help``.
        shown: how the default reads in ``--help`` (default its value).
        switch: a flag without a value that stores this (``True``: ``--resume``; ``False``:
            ``--no-progress`` for ``progress``).
        flag_default: the flag's default where it differs from the field's (None: the
            command resolves it; ``shown`` says how).
    """
    metadata = {
        "help": help,
        "flag": flag,
        "aliases": tuple(aliases),
        "choices": None if choices is None else tuple(choices),
        "type": type,
        "metavar": metavar,
        "shown": shown,
        "switch": switch,
        "flag_default": flag_default,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _unwrap(hint) -> tuple[object, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(hint))
    return hint, False


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def add_field_flags(parser: argparse.ArgumentParser, config_class, skip: tuple[str, ...] = ()) -> None:
    """A flag for every field of ``config_class`` (but ``skip``) from its :func:`setting` metadata:
    ``dest`` the field name, the field's default, help with the default appended."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        meta = field.metadata
        kind, nullable = _unwrap(hints[field.name])
        default = None if field.default is dataclasses.MISSING else field.default
        if meta.get("flag_default", dataclasses.MISSING) is not dataclasses.MISSING:
            default = meta["flag_default"]
        names = [meta.get("flag") or "--" + field.name.replace("_", "-"), *meta.get("aliases", ())]
        text = meta.get("help") or (field.name.replace("_", " "))
        if meta.get("switch") is not None:
            parser.add_argument(
                *names,
                dest=field.name,
                action="store_true" if meta["switch"] else "store_false",
                default=default,
                help=f"{text} (default: off)",
            )
            continue
        text += f" (default: {meta.get('shown') or _shown(default)})"
        if typing.get_origin(kind) is tuple:
            items = typing.get_args(kind)
            parser.add_argument(
                *names,
                dest=field.name,
                type=meta.get("type") or items[0],
                nargs=len(items),
                default=default,
                help=text,
                metavar=meta.get("metavar") or field.name.upper(),
            )
            continue
        converters: dict[object, Any] = {bool: _boolean, int: int, float: float}
        convert = meta.get("type") or converters.get(kind, str)
        parser.add_argument(
            *names,
            dest=field.name,
            type=_optional(convert) if nullable and kind is not str else convert,
            default=default,
            help=text,
            choices=meta.get("choices"),
            metavar=meta.get("metavar") or ("true|false" if kind is bool else None),
        )


# -- config files ---------------------------------------------------------------------------


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


def setting_names(parser: argparse.ArgumentParser, internal=("help", "config", "resume", "overwrite")) -> dict:
    """Config-file key → ``(action, by_flag)`` of ``parser``: each flag's names without their
    dashes (``subset``, ``on-bad``, ``on_bad``) and each field name (``train_subset``);
    ``by_flag``: the key is a flag's name (a ``--no-…`` switch then means what the flag does)."""
    names: dict[str, tuple[argparse.Action, bool]] = {}
    for action in parser._actions:
        if action.dest in internal or action.dest == argparse.SUPPRESS or not action.option_strings:
            continue
        names[action.dest] = (action, False)
        for option in action.option_strings:
            if option.startswith("--"):
                key = option[2:]
                for spelling in (key, key.replace("-", "_")):
                    if spelling != action.dest:
                        names.setdefault(spelling, (action, True))
    return names


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Set ``parser``'s defaults from the config file ``path`` (flags then override them)."""
    data = read_config_file(path)
    names = setting_names(parser)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            fields = sorted({action.dest for action, _ in names.values()})
            raise UserError(f"--config {path}: unknown setting {key!r}; this command's settings: {', '.join(fields)}")
        action, by_flag = names[key]
        checked = _checked(action, value, f"--config {path}: {key}")
        if by_flag and isinstance(action, argparse._StoreFalseAction) and checked is not None:
            checked = not checked  # no-progress: true
        if action.dest in values and values[action.dest] != checked:
            raise UserError(f"--config {path}: {key} sets {action.dest} again, to another value")
        values[action.dest] = checked
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
    """``folder/config.yaml``: every field of ``config`` but ``out`` (atomic); pass the resolved
    config (the preset's values filled in) so the file says what the run used."""
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


__all__ = [
    "CONFIG_NAME",
    "add_field_flags",
    "apply_config_file",
    "fraction",
    "level",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "read_config_file",
    "setting",
    "setting_names",
    "write_config",
]
