"""JSON reading and writing with errors that name the file and the offending field."""

from __future__ import annotations

import json
import os
from pathlib import Path


class PolicyFormatError(ValueError):
    """A policy, distribution or schedule file (or dict) is malformed; the message says where."""


def read_json(path) -> dict:
    """Parse the JSON object in ``path``; PolicyFormatError names the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyFormatError(f"{path}: cannot read: {err.strerror or err}") from err
    return parse_json(text, str(path))


def parse_json(text: str, source: str = "<string>") -> dict:
    """Parse a JSON object from ``text``; errors name ``source``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PolicyFormatError(f"{source}: not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise PolicyFormatError(f"{source}: expected a JSON object, got {type(data).__name__}")
    return data


def write_json(path, data: dict) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + rename), so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
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


class JsonFile:
    """Mixin: JSON text and file I/O for a class with ``to_dict()`` and ``from_dict(data, source)``."""

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str, source: str = "<string>"):
        return cls.from_dict(parse_json(text, source), source)

    def save(self, path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        """Read and validate ``path``; PolicyFormatError names the file and the field."""
        return cls.from_dict(read_json(path), str(path))
