"""A shard set's manifest: what the converter wrote, so the reader can tell a whole set from a part.

``manifest.json`` sits in the shard folder and is written last (after every shard is closed, then
the folder is renamed into place: :func:`fastpolicy.data.shards.write_shards`),
so its presence says the set is complete. It holds::

    {"format": "fastpolicy.shards", "version": 1, "shard_format": "webdataset" | "tfrecord",
     "classes": ["class name", …],              # label i is classes[i]
     "shards": {"shard-000000.tar": {"samples": 1000, "bytes": 123456, "sha256": "…"}, …}}

The reader (:class:`fastpolicy.loader.shards.ShardDataset`) refuses shards without a manifest, a
shard the manifest does not list, one whose size differs (always), whose SHA-256 differs (with
``verify="decode"``) or whose sample count differs; labels must lie in ``[0, len(classes))``;
train and held-out shard sets must have the same ``classes``. Shards made elsewhere get a
manifest once with ``fastpolicy shards --describe FOLDER`` (:func:`fastpolicy.data.shards.describe_shards`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from .. import atomic
from ..errors import UserError

NAME = "manifest.json"
FORMAT = "fastpolicy.shards"
VERSION = 1


class ManifestError(UserError, ValueError):
    """A shard set and its manifest disagree, or the manifest is missing or malformed."""


def sha256_of(path: str, chunk: int = 1 << 22) -> str:
    """The SHA-256 (hex) of the file at ``path``, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ShardManifest:
    """A shard folder's manifest. ``shards``: file name → ``{"samples", "bytes", "sha256"}``."""

    folder: str
    shard_format: str
    classes: tuple[str, ...]
    shards: dict

    @property
    def path(self) -> str:
        return os.path.join(self.folder, NAME)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "shard_format": self.shard_format,
            "classes": list(self.classes),
            "shards": self.shards,
        }

    def write(self) -> str:
        """Write ``manifest.json`` into :attr:`folder` atomically; returns its path."""
        atomic.write_json(self.path, self.to_dict())
        return self.path

    @classmethod
    def read(cls, folder: str) -> ShardManifest | None:
        """The manifest of ``folder``, None if it has none; :class:`ManifestError` names the file
        and the field when it is malformed."""
        path = os.path.join(folder, NAME)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as error:
            raise ManifestError(f"{path}: not a readable shard manifest ({error})") from None

        def bad(what: str) -> ManifestError:
            return ManifestError(f"{path}: {what}")

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise bad(f"not a fastpolicy shard manifest (format must be {FORMAT!r})")
        if data.get("version") != VERSION:
            raise bad(f"version {data.get('version')!r}, this fastpolicy reads version {VERSION}")
        classes, shards = data.get("classes"), data.get("shards")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise bad("classes must be a non-empty list of class names")
        if len(set(classes)) != len(classes):
            raise bad("classes holds a name twice")
        if not isinstance(shards, dict) or not shards:
            raise bad("shards must be a non-empty object of shard file names")
        for name, entry in shards.items():
            fields = ("samples", "bytes")
            if (
                not isinstance(entry, dict)
                or not all(isinstance(entry.get(k), int) and not isinstance(entry.get(k), bool) for k in fields)
                or min(entry["samples"], entry["bytes"]) < 0
                or not isinstance(entry.get("sha256"), str)
                or os.path.basename(name) != name
            ):
                raise bad(f"shards[{name!r}] must be {{'samples': int ≥ 0, 'bytes': int ≥ 0, 'sha256': hex}}")
        return cls(folder, str(data.get("shard_format")), tuple(classes), shards)

    def entry(self, shard: str) -> dict:
        """The manifest's entry of ``shard`` (a path in :attr:`folder`); ManifestError if unlisted."""
        name = os.path.basename(shard)
        if name not in self.shards:
            raise ManifestError(
                f"{shard}: not listed in {self.path} (a shard from another conversion, or one added later); "
                f"convert the folder again, or describe it again with: fastpolicy shards --describe {self.folder}"
            )
        return self.shards[name]

    def check_file(self, shard: str, checksum: bool) -> None:
        """ManifestError unless ``shard`` has its recorded size (and, with ``checksum``, SHA-256)."""
        entry = self.entry(shard)
        size = os.path.getsize(shard)
        if size != entry["bytes"]:
            raise ManifestError(
                f"{shard}: {size} bytes, its manifest {self.path} says {entry['bytes']}: changed or cut since "
                "it was written; convert it again"
            )
        if checksum and sha256_of(shard) != entry["sha256"]:
            raise ManifestError(
                f"{shard}: its SHA-256 differs from the one in {self.path}: changed since it was written; "
                "convert it again"
            )

    def check_count(self, shard: str, found: int) -> None:
        """ManifestError unless ``shard`` holds as many samples (good or bad) as recorded."""
        recorded = self.entry(shard)["samples"]
        if found != recorded:
            raise ManifestError(
                f"{shard}: holds {found} samples, its manifest {self.path} says {recorded}; convert it again"
            )


def manifest_key(shard: str) -> str:
    """The key of ``shard``'s manifest in :func:`manifests_for`'s result: its folder's absolute path."""
    return os.path.dirname(os.path.abspath(shard))


def manifests_for(shards: list[str]) -> dict[str, ShardManifest]:
    """Each shard's folder's manifest (:func:`manifest_key` → manifest). ManifestError for a
    folder without one, naming it and the two ways to get one."""
    found: dict[str, ShardManifest] = {}
    for shard in shards:
        folder = manifest_key(shard)
        if folder in found:
            continue
        manifest = ShardManifest.read(folder)
        if manifest is None:
            raise ManifestError(
                f"{folder}: no {NAME}, so whether its shards are a whole set cannot be told (a conversion "
                "killed part-way leaves none). Convert with fastpolicy shards; for shards made elsewhere, "
                f"describe them once with: fastpolicy shards --describe {folder}"
            )
        found[folder] = manifest
    return found


def shared_classes(manifests, where: str) -> tuple[str, ...]:
    """The class names every manifest in ``manifests`` holds (ManifestError if they differ)."""
    manifests = list(manifests)
    first = manifests[0]
    for other in manifests[1:]:
        if other.classes != first.classes:
            raise ManifestError(
                f"{where}: {first.path} and {other.path} hold different class maps "
                f"({_difference(first.classes, other.classes)})"
            )
    return first.classes


def _difference(a: tuple[str, ...], b: tuple[str, ...]) -> str:
    """The first place two class maps differ, in words."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"label {i} is {x!r} in one and {y!r} in the other"
    return f"{len(a)} classes against {len(b)}"


def check_same_classes(a: tuple[str, ...] | None, b: tuple[str, ...] | None, names: tuple[str, str]) -> None:
    """ValueError unless two shard sets' class maps are equal (training and held-out shards:
    a label must mean the same class in both)."""
    if a is not None and b is not None and a != b:
        raise ManifestError(
            f"{names[0]} and {names[1]} hold different class maps ({_difference(a, b)}); convert the held-out folder "
            f"with --classes {names[0]} so its labels mean the same classes"
        )


__all__ = [
    "NAME",
    "ManifestError",
    "ShardManifest",
    "check_same_classes",
    "manifest_key",
    "manifests_for",
    "sha256_of",
    "shared_classes",
]
