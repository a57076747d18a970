"""JSON reading and writing with errors that name the file and the offending field."""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic
from .errors import UserError

MAX_BYTES = 64 * 2**20
"""The largest policy file read (64 MiB; an adversarial schedule of 1 000 epochs is about 3 MiB)."""


class PolicyFormatError(UserError, ValueError):
    """A policy, distribution or schedule file (or dict) is malformed; the message says where."""


def read_json(path, max_bytes: int = MAX_BYTES) -> dict:
    """Parse the JSON object in ``path``; PolicyFormatError names the file on any problem
    (unreadable, larger than ``max_bytes``, not UTF-8, not JSON, nested too deeply)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise PolicyFormatError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise PolicyFormatError(f"{path}: {size} bytes, more than a policy file may hold ({max_bytes})")
        raw = path.read_bytes()
    except OSError as err:
        raise PolicyFormatError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PolicyFormatError(
            f"{path}: not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r})"
        ) from None
    return parse_json(text, str(path))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs):
    """An object's pairs as a dict; a key given twice is refused (json keeps the last silently)."""
    data = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"key {key!r} appears twice in one object")
        data[key] = value
    return data


def parse_json(text: str, source: str = "<string>") -> dict:
    """Parse a JSON object from ``text`` (NaN and Infinity refused, and a key given twice in one
    object); errors name ``source``."""
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise PolicyFormatError(f"{source}: not valid JSON: {err}") from None
    except RecursionError:
        raise PolicyFormatError(f"{source}: not a policy file (JSON nested too deeply)") from None
    except ValueError as err:
        raise PolicyFormatError(f"{source}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PolicyFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
    return data


def checked_from_dict(from_dict, data, source: str):
    """``from_dict(data, source)`` with any error other than PolicyFormatError (a wrong type
    deep inside, say) turned into one that names ``source``."""
    try:
        return from_dict(data, source)
    except PolicyFormatError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as err:
        raise PolicyFormatError(f"{source}: malformed ({type(err).__name__}: {err})") from None


def write_json(path, data: dict) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    atomic.write_text(str(path), json.dumps(data, indent=1) + "\n")
    return path


def check_header(data: dict, kind: str, source: str) -> None:
    """Require ``{"format": kind, "version": 1}``."""
    if data.get("format") != kind:
        raise PolicyFormatError(f"{source}: 'format' must be {kind!r}, got {data.get('format')!r}")
    if data.get("version") != 1:
        raise PolicyFormatError(f"{source}: unsupported {kind} version {data.get('version')!r} (expected 1)")


def field(data: dict, key: str, types, source: str):
    """``data[key]``, which must exist and be of ``types``."""
    if key not in data:
        raise PolicyFormatError(f"{source}: missing field {key!r}")
    value = data[key]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise PolicyFormatError(f"{source}: field {key!r} must be {names}, got {type(value).__name__}")
    return value


STANDARD_FORMAT = "fastpolicy.standard_policy"
"""The ``format`` of a standard policy's file (:mod:`fastpolicy.policies`, a timm string's too);
its ``kind`` says which."""


class JsonFile:
    """Mixin: JSON text and file I/O for a class with ``to_dict()`` and ``from_dict(data, source)``."""

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>"):
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str, source: str = "<string>"):
        return checked_from_dict(cls.from_dict, parse_json(text, source), source)

    def save(self, path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read and validate ``path``; PolicyFormatError names the file and the field."""
        return checked_from_dict(cls.from_dict, read_json(path), str(path))


def standard_from_dict(cls, data: dict, source: str = "<dict>"):
    """A standard policy of class ``cls`` (its ``kind``) from its :data:`STANDARD_FORMAT` dict:
    the other keys are its constructor's arguments; PolicyFormatError naming ``source`` and the
    problem otherwise."""
    check_header(data, STANDARD_FORMAT, source)
    if data.get("kind") != cls.kind:
        raise PolicyFormatError(f"{source}: 'kind' must be {cls.kind!r}, got {data.get('kind')!r}")
    arguments = {k: v for k, v in data.items() if k not in ("format", "version", "kind")}
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as err:
        raise PolicyFormatError(f"{source}: {err}") from None
