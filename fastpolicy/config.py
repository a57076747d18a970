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
import math
import os
import stat
import types
import typing
from typing import Any

from . import atomic
from .device import DEVICES
from .errors import UserError

CONFIG_NAME = "config.yaml"
"""The resolved config in every run folder."""


# -- number domains and checked flag types -------------------------------------------------


def excerpt(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error message never echoes a whole value:
    a config file's aliases can expand one to megabytes)."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclasses.dataclass(frozen=True)
class Domain:
    """Where a number setting's values lie: always finite, between ``low`` and ``high`` (each end
    open or closed), an integer if ``integer``. Declared once on the field (:func:`setting`'s
    ``domain``, or implied by its flag type: :func:`positive_float` …) and checked at the
    command line, in config files and when the config dataclass is built (:func:`validate`)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """``a finite number > 0``, ``an integer in 0..255``, ``a number in (0, 1]`` …"""
        what = "an integer" if self.integer else "a finite number"
        if math.isinf(self.low) and math.isinf(self.high):
            return what
        if math.isinf(self.high):
            return f"{what} {'>' if self.low_open else '≥'} {self.low:g}"
        if math.isinf(self.low):
            return f"{what} {'<' if self.high_open else '≤'} {self.high:g}"
        if self.integer:
            return f"an integer in {self.low:g}..{self.high:g}"
        return f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def problem(self, value) -> str | None:
        """Why ``value`` is outside the domain (None: it is inside)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is not {self.describe()} ({excerpt(value)}, a {type(value).__name__})"
        if self.integer and not float(value).is_integer():
            return f"is not an integer ({excerpt(value)})"
        if not math.isfinite(value):
            return f"must be {self.describe()}, got {value}"
        low_ok = value > self.low if self.low_open else value >= self.low
        high_ok = value < self.high if self.high_open else value <= self.high
        if not (low_ok and high_ok):
            return f"must be {self.describe()}, got {value:g}"
        return None

    def parse(self, text):
        """Flag type: ``text`` as a number in the domain (``argparse.ArgumentTypeError`` otherwise)."""
        kind = int if self.integer else float
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{excerpt(text)} is not {self.describe()}") from None
        if self.problem(value) is not None:
            raise argparse.ArgumentTypeError(f"{text} is not {self._short()}")
        return value

    def _short(self) -> str:
        if self.integer and math.isinf(self.high) and self.low in (0, 1):
            return "positive" if self.low == 1 else "≥ 0"
        return self.describe()


FINITE = Domain()
"""Any finite number: every float setting's domain unless it declares a narrower one."""
POSITIVE = Domain(0, low_open=True)
NONNEGATIVE = Domain(0)
FRACTION = Domain(0, 1, low_open=True)
UNIT = Domain(0, 1)
"""[0, 1]: weights of an average, probabilities."""
UNIT_OPEN = Domain(0, 1, high_open=True)
"""[0, 1): Adam's betas, EMA weights that must forget."""


def positive_int(text: str) -> int:
    """Flag type: an integer ≥ 1."""
    return _DOMAINS[positive_int].parse(text)


def nonnegative_int(text: str) -> int:
    """Flag type: an integer ≥ 0."""
    return _DOMAINS[nonnegative_int].parse(text)


def positive_float(text: str) -> float:
    """Flag type: a finite number > 0."""
    return POSITIVE.parse(text)


def level(text: str) -> int:
    """Flag type: an integer level in 0..255."""
    return _DOMAINS[level].parse(text)


def fraction(text: str) -> float:
    """Flag type: a number in (0, 1]."""
    return FRACTION.parse(text)


_DOMAINS: dict[Any, Domain] = {
    positive_int: Domain(1, integer=True),
    nonnegative_int: Domain(0, integer=True),
    positive_float: POSITIVE,
    level: Domain(0, 255, integer=True),
    fraction: FRACTION,
}
"""The domain each checked flag type implies."""


def _boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{excerpt(text)} is not true or false")


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
    domain: Domain | None = None,
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
        domain: a number setting's :class:`Domain` (default: the one its ``type`` implies, else
            :data:`FINITE` for a float); checked by the flag, a config file and :func:`validate`.
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
        "domain": domain,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _number_kind(kind) -> type | None:
    """int or float for a number field's type (or a tuple of them), else None."""
    if typing.get_origin(kind) is tuple:
        items = set(typing.get_args(kind))
        return items.pop() if len(items) == 1 and items <= {int, float} else None
    return kind if kind in (int, float) else None


def field_domain(field: dataclasses.Field, kind) -> Domain | None:
    """The :class:`Domain` of a config field (``kind`` its type without None), or None (not a number)."""
    meta = field.metadata
    if meta.get("domain") is not None:
        return meta["domain"]
    if meta.get("type") in _DOMAINS:
        return _DOMAINS[meta["type"]]
    number = _number_kind(kind)
    return FINITE if number is float else Domain(integer=True) if number is int else None


def validate(config) -> None:
    """Check every field of a config dataclass against its declaration: a number within its
    :class:`Domain` (finite, in range), a value among its ``choices``, a text (a path, a name)
    where one is expected (an ``os.PathLike`` becomes its string). ValueError names the field.
    Config dataclasses call it from ``__post_init__``, so the Python API, the command line and
    config files are checked alike."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kind, nullable = _unwrap(hints[field.name])
        if value is None:
            if nullable or field.default is None:
                continue
            raise ValueError(f"{field.name} must be set, got None")
        if kind is str:
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
                setattr(config, field.name, value)
            if not isinstance(value, str):
                raise ValueError(
                    f"{field.name} must be one text value (a path or a name), got {excerpt(value)} "
                    f"(a {type(value).__name__})"
                )
        domain = field_domain(field, kind)
        if domain is not None:
            items = value if typing.get_origin(kind) is tuple else (value,)
            if typing.get_origin(kind) is tuple and (
                not isinstance(value, (tuple, list)) or len(value) != len(typing.get_args(kind))
            ):
                raise ValueError(f"{field.name} must be {len(typing.get_args(kind))} numbers, got {excerpt(value)}")
            for item in items:
                problem = domain.problem(item)
                if problem is not None:
                    raise ValueError(f"{field.name} {problem}")
        choices = field.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ValueError(f"{field.name} must be one of {list(choices)}, got {excerpt(value)}")


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
        domain = field_domain(field, kind)
        if typing.get_origin(kind) is tuple:
            items = typing.get_args(kind)
            parser.add_argument(
                *names,
                dest=field.name,
                type=meta.get("type") or (domain.parse if domain is not None else items[0]),
                nargs=len(items),
                default=default,
                help=text,
                metavar=meta.get("metavar") or field.name.upper(),
            )
            continue
        converters: dict[object, Any] = {bool: _boolean, int: int, float: float}
        convert = meta.get("type") or (domain.parse if domain is not None else converters.get(kind, str))
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


MAX_CONFIG_BYTES = 1 << 20
"""The largest config file read (a run's ``config.yaml`` is about 1 KB)."""
MAX_CONFIG_NODES = 10_000
"""The most YAML nodes a config file may expand to, aliases expanded (a few hundred bytes of
nested aliases expand to gigabytes: refused while composing, before any value is built)."""


def _read_regular(path: str, flag: str) -> bytes:
    """At most :data:`MAX_CONFIG_BYTES` of the regular file ``path`` (a FIFO or a device never blocks)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UserError(f"{flag} {path}: no such file") from None
    except OSError as error:
        raise UserError(f"{flag} {path}: cannot be read ({error.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{flag} {path}: not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{flag} {path}: {info.st_size} bytes; a config file may hold at most {MAX_CONFIG_BYTES}")
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise UserError(f"{flag} {path}: larger than {MAX_CONFIG_BYTES} bytes, the most a config file may hold")
    return data


def _counting_loader():
    """A safe YAML loader that counts the nodes the document expands to (each alias counted as
    what it stands for) while composing it, and raises past :data:`MAX_CONFIG_NODES`."""
    import yaml

    class Loader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._sizes: dict[int, int] = {}
            self._total = 0

        def construct_mapping(self, node, deep=False):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *base": merged keys may be overridden, as YAML means
                key = self.construct_object(key_node, deep=True)
                if key in seen:  # PyYAML keeps the last silently
                    raise yaml.YAMLError(f"key {excerpt(key)} appears twice (line {key_node.start_mark.line + 1})")
                if isinstance(key, (str, int, float, bool)) or key is None:
                    seen.add(key)
            return super().construct_mapping(node, deep)

        def compose_node(self, parent, index):
            alias = self.check_event(yaml.AliasEvent)
            node = super().compose_node(parent, index)
            if alias:
                if id(node) not in self._sizes:
                    raise yaml.YAMLError("a recursive alias (a value that contains itself)")
                size = self._sizes[id(node)]
            else:
                size = 1
                if isinstance(node, yaml.SequenceNode):
                    size += sum(self._sizes[id(item)] for item in node.value)
                elif isinstance(node, yaml.MappingNode):
                    size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
                self._sizes[id(node)] = size
            if alias:
                self._total += size
            if size > MAX_CONFIG_NODES or self._total > MAX_CONFIG_NODES:
                raise yaml.YAMLError(
                    f"it expands to more than {MAX_CONFIG_NODES} values (aliases expanded); a config file "
                    "is a short mapping of settings"
                )
            return node

    return Loader


def read_config_file(path: str, flag: str = "--config") -> dict:
    """The mapping in YAML file ``path`` (at most :data:`MAX_CONFIG_BYTES`, expanding to at most
    :data:`MAX_CONFIG_NODES` values); UserError naming the file (as ``flag``) otherwise."""
    import yaml

    data = _read_regular(path, flag)
    try:
        loaded = yaml.load(data.decode("utf-8"), Loader=_counting_loader())
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise UserError(f"{flag} {path}: not a usable YAML config file ({excerpt(detail, 200)[1:-1]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(key, str) for key in loaded):
        raise UserError(f"{flag} {path}: expected a mapping of setting names to values, got {type(loaded).__name__}")
    return loaded


def threads_setting(help: str = "DALI CPU threads"):
    """The ``--threads`` setting every run and study has: one declaration (a study's ``help`` says
    that it also sets torch's threads)."""
    return setting(2, help, flag="--threads", aliases=("--num-threads",), type=positive_int, metavar="THREADS")


def progress_setting():
    """The ``--no-progress`` setting every run and study has: one declaration."""
    return setting(
        True,
        "no progress bars (they are shown only on a terminal, and not with -q)",
        flag="--no-progress",
        switch=False,
    )


def device_setting():
    """The ``--device`` setting (``cpu``, ``gpu``, or None: the GPU if there is one)."""
    return setting(None, "where to train", choices=DEVICES, shown="the GPU if there is one")


def setting_names(
    parser: argparse.ArgumentParser, internal=("help", "config", "resume", "overwrite", "debug", "verbosity")
) -> dict:
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


def apply_config_file(parser: argparse.ArgumentParser, path: str, flag: str = "--config") -> None:
    """Set ``parser``'s defaults from the config file ``path`` (flags then override them)."""
    data = read_config_file(path, flag)
    names = setting_names(parser)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            fields = sorted({action.dest for action, _ in names.values()})
            raise UserError(
                f"--config {path}: unknown setting {excerpt(key)}; this command's settings: {', '.join(fields)}"
            )
        action, by_flag = names[key]
        checked = _checked(action, value, f"{flag} {path}: {key}")
        if by_flag and isinstance(action, argparse._StoreFalseAction) and checked is not None:
            checked = not checked  # no-progress: true
        if action.dest in values and values[action.dest] != checked:
            raise UserError(f"{flag} {path}: {key} sets {action.dest} again, to another value")
        values[action.dest] = checked
    parser.set_defaults(**values)


def _checked(action: argparse.Action, value, where: str):
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {excerpt(value)}")
        return value
    convert: Any = action.type or (lambda v: v)

    def scalar(item):
        if isinstance(item, (list, tuple, dict, set)):
            raise UserError(f"{where}: expected one value, got a {type(item).__name__} ({excerpt(item)})")
        if item is None or not isinstance(item, (str, int, float)):
            raise UserError(f"{where}: expected one value, got {excerpt(item)}")
        return convert(item if isinstance(item, str) else str(item))

    try:
        if isinstance(action.nargs, int) or action.nargs in ("+", "*"):
            if not isinstance(value, (list, tuple)) or (isinstance(action.nargs, int) and len(value) != action.nargs):
                raise UserError(f"{where}: expected a list of {action.nargs} values, got {excerpt(value)}")
            value = [scalar(v) for v in value]
        else:
            value = scalar(value)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as error:
        raise UserError(f"{where}: {error}") from None
    if action.choices is not None and value not in action.choices:
        raise UserError(f"{where}: {excerpt(value)} is not one of {list(action.choices)}")
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
    "FINITE",
    "FRACTION",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_NODES",
    "NONNEGATIVE",
    "POSITIVE",
    "UNIT",
    "UNIT_OPEN",
    "Domain",
    "add_field_flags",
    "apply_config_file",
    "excerpt",
    "field_domain",
    "fraction",
    "level",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "read_config_file",
    "setting",
    "setting_names",
    "validate",
    "write_config",
]
