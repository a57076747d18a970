"""Sharded datasets: webdataset tar shards and TFRecord files, listed, checked and written.

* **webdataset**: POSIX tar files; a sample is the members sharing a key (the member name
  up to the first dot of its base name), e.g. ``n01440764_10026.jpg`` and
  ``n01440764_10026.cls`` (the label as decimal text).
* **TFRecord**: records of ``tf.train.Example`` protobufs (features ``image/encoded``, the
  encoded image, and ``image/class/label``, an int64, by default), each with an index file
  in DALI's ``tfrecord2idx`` format (one ``offset size`` line per record, in bytes).

:func:`list_shards` turns a brace pattern, a folder or a list into shard paths;
:func:`scan_tar` and :func:`scan_tfrecord` list a shard's samples cheaply (tar headers;
the index and each record's 8-byte length), and with ``verify="decode"`` also decode every
image and parse every label. :func:`write_shards` converts a folder (the converter behind
``fastpolicy shards``).
"""

from __future__ import annotations

import glob
import io
import os
import re
import shutil
import struct
import tarfile
from dataclasses import dataclass

from ..errors import UserError
from .files import scan_folder
from .manifest import ShardManifest, sha256_of

FORMATS = ("webdataset", "tfrecord")
"""Shard formats: DALI's ``fn.readers.webdataset`` and ``fn.readers.tfrecord``."""

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".record")
"""File name endings taken as TFRecord shards in a folder (besides ``*-of-*`` names)."""


class BadShardError(UserError, ValueError):
    """Raised for samples of a shard that cannot be read; ``bad`` lists ``(shard, key, reason)``."""

    def __init__(self, bad: list[tuple[str, str, str]], hint: str = ""):
        self.bad = list(bad)
        hint = f" ({hint})" if hint else ""
        lines = [f"{shard}: sample {key}: {reason}" for shard, key, reason in self.bad[:20]]
        more = [f"… and {len(self.bad) - 20} more"] if len(self.bad) > 20 else []
        if len(self.bad) == 1:
            super().__init__(f"bad shard sample {lines[0]}{hint}")
        else:
            super().__init__(f"{len(self.bad)} bad shard samples{hint}:\n  " + "\n  ".join(lines + more))


@dataclass(frozen=True)
class ShardKeys:
    """Where a sample's image and label are.

    Attributes:
        image: webdataset image extensions, the first present is read (``jpg``, ``jpeg``, ``png``).
        label: webdataset label extension (decimal text, e.g. ``cls``).
        image_feature, label_feature: TFRecord feature names (bytes, int64).
        index_dir: folder of the TFRecord index files (``<shard name>.idx``); None: beside
            each shard (``<shard>.idx``, or the shard's name without its suffix + ``.idx``).
        classes: labels must lie in [0, classes); None: any label ≥ 0.
    """

    image: tuple[str, ...] = ("jpg", "jpeg", "png")
    label: str = "cls"
    image_feature: str = "image/encoded"
    label_feature: str = "image/class/label"
    index_dir: str | None = None
    classes: int | None = None

    def __post_init__(self):
        if isinstance(self.image, str):
            object.__setattr__(self, "image", (self.image,))
        if not self.image or not all(isinstance(e, str) and e for e in self.image):
            raise ValueError(f"image extensions must be non-empty strings, got {self.image!r}")
        if self.label in self.image:
            raise ValueError(f"label extension {self.label!r} is also an image extension")
        if self.classes is not None and (isinstance(self.classes, bool) or not isinstance(self.classes, int)):
            raise ValueError(f"classes must be an integer or None, got {self.classes!r}")

    def check_label(self, label: int) -> str | None:
        """Why ``label`` is out of range, or None."""
        if label < 0 or (self.classes is not None and label >= self.classes):
            limit = "≥ 0" if self.classes is None else f"in [0, {self.classes})"
            return f"label {label} out of range (must be {limit})"
        return None


MAX_SHARD_NAMES = 100_000
"""Most shard names one brace range may expand to (each is then checked on disk)."""


def _expand_braces(pattern: str) -> list[str]:
    """Every name a brace pattern stands for, in order: numeric ranges (``train-{000..002}.tar``,
    zero padding kept) and alternatives (``{train,val}-{0..1}.tar``), any number of groups, as
    webdataset's and the shell's brace expansion give them. At most :data:`MAX_SHARD_NAMES`."""
    match = re.search(r"\{(\d+)\.\.(\d+)\}|\{([^{}]*,[^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if match.group(3) is not None:
        choices = match.group(3).split(",")
    else:
        first, last = match.group(1), match.group(2)
        if int(last) < int(first):
            raise ValueError(f"{pattern}: range {{{first}..{last}}} goes down")
        if int(last) - int(first) + 1 > MAX_SHARD_NAMES:
            raise ValueError(
                f"{pattern}: range {{{first}..{last}}} names {int(last) - int(first) + 1} shards, over "
                f"{MAX_SHARD_NAMES} (a typo? ImageNet is 1 024 shards of 1 250 images)"
            )
        width = len(first) if first.startswith("0") else 0
        choices = [f"{i:0{width}d}" for i in range(int(first), int(last) + 1)]
    names: list[str] = []
    for choice in choices:
        names += _expand_braces(f"{head}{choice}{tail}")
        if len(names) > MAX_SHARD_NAMES:
            raise ValueError(f"{pattern}: names more than {MAX_SHARD_NAMES} shards")
    return names


def shard_format(path: str) -> str | None:
    """``"webdataset"``, ``"tfrecord"`` or None (not a shard) by ``path``'s name."""
    name = os.path.basename(path).lower()
    if name.endswith(".tar"):
        return "webdataset"
    if name.endswith(TFRECORD_SUFFIXES) or re.search(r"-\d+-of-\d+$", name):
        return "tfrecord"
    return None


def list_shards(data) -> tuple[str, list[str]] | None:
    """``(format, shard paths)`` of ``data`` (a brace pattern or glob, a folder holding
    shards, a shard, or a list of shards), or None when ``data`` is no sharded dataset.
    ValueError for mixed formats; FileNotFoundError names a missing shard."""
    if isinstance(data, (list, tuple)):
        paths = [os.fspath(p) for p in data]
    elif isinstance(data, (str, os.PathLike)):
        data = os.fspath(data)
        if os.path.isdir(data):
            names = sorted(os.listdir(data))
            paths = [os.path.join(data, n) for n in names if shard_format(n) and os.path.isfile(os.path.join(data, n))]
            if not paths or any(os.path.isdir(os.path.join(data, n)) for n in names):
                return None  # an image folder (class folders), not shards
        elif "{" in data or any(c in data for c in "*?["):
            paths = [p for name in _expand_braces(data) for p in (sorted(glob.glob(name)) or [name])]
        else:
            paths = [data]
    else:
        return None
    formats = {shard_format(p) for p in paths}
    if not paths or None in formats:
        return None if not isinstance(data, (list, tuple)) else _refuse(paths)
    if len(formats) > 1:
        raise ValueError(f"shards mix webdataset and TFRecord files: {paths[:4]}")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"shard {path}: no such file")
    return str(formats.pop()), [os.path.abspath(p) for p in paths]


def _refuse(paths: list[str]):
    others = [p for p in paths if shard_format(p) is None]
    raise ValueError(f"not a shard (.tar or .tfrecord): {others[0] if others else 'an empty list'}")


@dataclass
class Sample:
    """One sample of a shard: its key, the image's byte offset and size, the label's (if any)
    and the label's value where the scan read it (webdataset; TFRecord with ``"decode"``)."""

    key: str
    image: tuple[str, int, int]  # (member name or "", offset, size) of the image bytes
    label: tuple[int, int] | None = None  # (offset, size) of the label bytes (webdataset)
    value: int | None = None


def split_name(name: str) -> tuple[str, str]:
    """A tar member name as webdataset's ``(key, extension)``: the extension is the text
    after the first dot of the base name."""
    folder, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return os.path.join(folder, stem), ext


def _read(handle, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _decode_check(payload: bytes) -> str | None:
    """Why ``payload`` is no decodable image, or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
    except Exception as error:  # PIL raises many kinds; all mean "not an image"
        return f"not a decodable image ({type(error).__name__}: {error})"
    return None


def scan_tar(path: str, keys: ShardKeys, verify: str) -> tuple[list[Sample], list[tuple[str, str]]]:
    """``(samples, bad)`` of webdataset shard ``path``: samples in tar order, each with an
    image and a label (``bad``: ``(key, reason)`` of the others). Reads the tar headers and
    the label members; ``verify="decode"`` also decodes every image. A truncated tar keeps
    the samples before the cut and names the one it cut."""
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    bad: list[tuple[str, str]] = []
    size = os.path.getsize(path)
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile() or os.path.basename(member.name).startswith("."):
                    continue
                key, ext = split_name(member.name)
                if ext in members.get(key, {}):
                    bad.append((key, f"member {member.name} appears twice (the tar was appended to?)"))
                    members[key]["\0duplicate"] = member  # the sample is bad: neither copy is read
                    continue
                end = member.offset_data + member.size
                if end > size:
                    bad.append((key, f"truncated: member {member.name} ends at byte {end}, the file has {size}"))
                    continue
                members.setdefault(key, {})[ext] = member
    except tarfile.TarError as error:
        last = next(reversed(members), "(first)") if members else "(first)"
        bad.append((f"after {last}", f"unreadable tar ({error})"))
    samples = []
    with open(path, "rb") as handle:
        for key, parts in members.items():
            if "\0duplicate" in parts:
                continue  # named in bad already
            image = next((parts[e] for e in keys.image if e in parts), None)
            label = parts.get(keys.label)
            if image is None or label is None:
                wanted = "/".join(keys.image) if image is None else keys.label
                bad.append((key, f"missing key {wanted} (has {', '.join(sorted(parts)) or 'nothing'})"))
                continue
            value, reason = _label(_read(handle, label.offset_data, label.size), keys)
            if reason is None and verify != "none" and image.size == 0:
                reason = "empty image"
            if reason is None and verify == "decode":
                reason = _decode_check(_read(handle, image.offset_data, image.size))
            if reason is not None:
                bad.append((key, reason))
                continue
            place = (image.name, image.offset_data, image.size)
            samples.append(Sample(key, place, (label.offset_data, label.size), value))
    return samples, bad


def _label(text: bytes, keys: ShardKeys) -> tuple[int | None, str | None]:
    """``(label, None)`` of a webdataset label member, or ``(None, why it is bad)``."""
    try:
        label = int(text.strip())
    except ValueError:
        return None, f"label {text[:20]!r} is not an integer"
    reason = keys.check_label(label)
    return (None, reason) if reason else (label, None)


def index_path(shard: str, keys: ShardKeys) -> str:
    """The TFRecord index file of ``shard``; FileNotFoundError (naming ``tfrecord2idx``) if none."""
    folder = keys.index_dir or os.path.dirname(shard)
    name = os.path.basename(shard)
    candidates = [os.path.join(folder, name + ".idx"), os.path.join(folder, os.path.splitext(name)[0] + ".idx")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"TFRecord shard {shard} has no index file (looked for {candidates[0]}); make one with "
        f"DALI's tfrecord2idx: tfrecord2idx {shard} {candidates[0]}"
    )


def scan_tfrecord(path: str, index: str, keys: ShardKeys, verify: str) -> tuple[list[Sample], list[tuple[str, str]]]:
    """``(samples, bad)`` of TFRecord shard ``path`` with index file ``index``: one sample
    per index line (key ``record <i>``). Every line must be two integers, an offset ≥ 0 past
    the previous record and a size ≥ 16, inside the file (a line that is not is refused, naming
    the index file and line: an index that cannot be trusted is no index). Each record's 8-byte
    length and its CRC are checked (not ``"none"``); with ``"decode"`` also the data's CRC, its
    Example, image and label."""
    samples, bad = [], []
    size = os.path.getsize(path)
    end = 0
    with open(index, "rb") as lines, open(path, "rb") as handle:
        for i, raw in enumerate(lines):
            key = f"record {i}"
            fields = raw.split()
            try:
                offset, length = (int(v) for v in fields)
            except ValueError:
                raise BadShardError(
                    [(index, f"line {i + 1}", f"not 'offset size' but {raw.strip()[:60]!r}")],
                    hint="remake the index with DALI's tfrecord2idx",
                ) from None
            if offset < end or length < 16:
                what = f"offset {offset} before the previous record's end {end}" if offset < end else f"size {length}"
                raise BadShardError(
                    [(index, f"line {i + 1}", f"{what}: not an index of this file's records")],
                    hint="remake the index with DALI's tfrecord2idx",
                )
            end = offset + length
            reason = None
            if offset + length > size:
                reason = f"truncated: ends at byte {offset + length}, the file has {size}"
            elif verify != "none":
                header = _read(handle, offset, 12)
                if len(header) < 12 or struct.unpack("<Q", header[:8])[0] + 16 != length:
                    reason = f"index {index} disagrees with the record at byte {offset}"
                elif _masked_crc(header[:8]) != header[8:]:
                    reason = f"the record at byte {offset} fails its length CRC"
            value = None
            if reason is None and verify == "decode":
                record = _read(handle, offset, length)
                if _masked_crc(record[12:-4]) != record[-4:]:
                    reason = f"the record at byte {offset} fails its data CRC (changed since it was written)"
                else:
                    value, reason = _example(record[12:-4], keys)
            if reason is not None:
                bad.append((key, reason))
            else:
                samples.append(Sample(key, ("", offset, length), value=value))
    return samples, bad


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC-32C of ``data`` (4 bytes, little-endian)."""
    from tfrecord.writer import TFRecordWriter

    return TFRecordWriter.masked_crc(data)


def read_tfrecord_labels(path: str, samples: list[Sample], keys: ShardKeys) -> list[tuple[str, str]]:
    """Set the ``value`` of every sample of TFRecord shard ``path`` whose label was not read
    (parsing each record's Example, no image decoded); returns ``(key, reason)`` of the
    samples whose label is missing or out of range."""
    from tfrecord import example_pb2

    bad = []
    with open(path, "rb") as handle:
        for sample in samples:
            if sample.value is not None:
                continue
            _, offset, length = sample.image
            try:
                features = example_pb2.Example.FromString(_read(handle, offset + 12, length - 16)).features.feature
            except Exception as error:  # protobuf's DecodeError and friends
                bad.append((sample.key, f"not a tf.train.Example ({error})"))
                continue
            reason: str | None
            if keys.label_feature not in features:
                reason = f"missing key {keys.label_feature} (has {', '.join(sorted(features)) or 'nothing'})"
            else:
                labels = features[keys.label_feature].int64_list.value
                reason = (
                    keys.check_label(labels[0])
                    if len(labels) == 1
                    else f"{keys.label_feature} holds {len(labels)} int64 values, not one"
                )
            if reason is None:
                sample.value = int(features[keys.label_feature].int64_list.value[0])
            else:
                bad.append((sample.key, reason))
    return bad


def _example(record: bytes, keys: ShardKeys) -> tuple[int | None, str | None]:
    """``(label, None)`` of a good Example record (decoded image, label in range), or
    ``(None, why it is bad)``."""
    from tfrecord import example_pb2

    try:
        features = example_pb2.Example.FromString(record).features.feature
    except Exception as error:  # protobuf's DecodeError and friends
        return None, f"not a tf.train.Example ({error})"
    for name in (keys.image_feature, keys.label_feature):
        if name not in features:
            return None, f"missing key {name} (has {', '.join(sorted(features)) or 'nothing'})"
    labels = features[keys.label_feature].int64_list.value
    if len(labels) != 1:
        return None, f"{keys.label_feature} holds {len(labels)} int64 values, not one"
    images = features[keys.image_feature].bytes_list.value
    reason = keys.check_label(labels[0]) or (_decode_check(images[0]) if images else "empty image")
    return (None, reason) if reason else (int(labels[0]), None)


STORED_AS_IS = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png"}
"""Image files the converter stores byte for byte, by ending, and the key they get (the reader's
default keys); every other format the folder loader takes is re-encoded as lossless PNG."""


def _payload(path: str) -> tuple[bytes, str]:
    """``(image bytes, key)`` of one image file: JPEG and PNG as they are, any other format the
    folder loader takes (BMP, TIFF, WebP, PNM …) re-encoded as PNG (lossless; 16-bit and CMYK
    images as 8-bit RGB, as the decoder would give them)."""
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as handle:
        data = handle.read()
    if ext in STORED_AS_IS:
        return data, STORED_AS_IS[ext]
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format="PNG")
    except Exception as error:  # PIL raises many kinds; all mean "not an image it can read"
        raise UserError(f"{path}: cannot be converted ({type(error).__name__}: {error}); remove it") from None
    return out.getvalue(), "png"


def write_shards(
    root: str,
    out: str,
    format: str,
    shard_size: int,
    progress: bool = True,
    classes_from: str | None = None,
    overwrite: bool = False,
    on_bad: str = "raise",
) -> list[str]:
    """Convert image folder ``root`` (``root/<class>/<image>``) to a shard set in ``out``:
    ``shard-000000.tar`` … (or ``shard-000000.tfrecord`` with ``shard-000000.idx``) of
    ``shard_size`` samples and ``manifest.json`` (:mod:`.manifest`). Returns the shard paths.

    Label = the class's index in sorted class order, as for folders, or with ``classes_from``
    (a shard folder, or its ``manifest.json``) that set's class map, so a held-out set converted
    separately means the same classes (a class it does not know is refused). JPEG and PNG files
    are stored as they are, other formats re-encoded as PNG (:func:`_payload`).

    Atomic: everything is written into ``<out>.partial-<pid>`` beside ``out``, the manifest
    last, then the folder is renamed into place; a conversion killed part-way leaves only that
    folder (no manifest: the reader refuses it). ``out`` must be empty or missing, or
    ``overwrite`` replaces a shard set this converter wrote there (a manifest and shard files
    only: a folder holding anything else is refused, never deleted). ``on_bad="skip"`` leaves unreadable
    file names and empty class folders out (:func:`~.files.scan_folder`)."""
    from tqdm import tqdm

    from ..log import bars_disabled

    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be an integer ≥ 1, got {shard_size!r}")
    source, target = os.path.realpath(root), os.path.realpath(out)
    if target == source or target.startswith(source + os.sep):
        raise UserError(f"{out}: the shards would be written inside the folder they are converted from ({root})")
    if source.startswith(target + os.sep):
        raise UserError(f"{out}: holds the folder the shards are converted from ({root}); name another folder")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UserError(f"{out}: exists and is not a folder; name a new or empty folder for the shards")
    _check_replaceable(out, overwrite)
    images = scan_folder(root, on_bad=on_bad)
    labels = images.labels.tolist()
    classes = tuple(images.classes)
    if classes_from is not None:
        folder = os.path.dirname(classes_from) if os.path.isfile(classes_from) else classes_from
        reference = ShardManifest.read(folder)
        if reference is None:
            raise UserError(f"--classes {classes_from}: no manifest.json there to take the class map from")
        unknown = sorted(set(classes) - set(reference.classes))
        if unknown:
            raise UserError(
                f"{root} holds class folder(s) {unknown[:5]} that {reference.path} does not list; a label "
                "would mean no class of that set"
            )
        labels = [reference.classes.index(classes[label]) for label in labels]
        classes = reference.classes
    work = f"{target}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        entries, paths = _write_into(work, format, shard_size, images.files, labels, progress, tqdm, bars_disabled)
        for path in paths:
            entries[os.path.basename(path)] |= {"bytes": os.path.getsize(path), "sha256": sha256_of(path)}
        ShardManifest(work, format, classes, entries).write()  # last: the set is whole
        _publish(work, target, overwrite)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return [os.path.join(out, os.path.basename(p)) for p in paths]


def _write_into(work, format, shard_size, files, labels, progress, tqdm, bars_disabled):
    """Write the shards into ``work``: ``(manifest entries with sample counts, shard paths)``."""
    writer = _TarShard if format == "webdataset" else _TFRecordShard
    paths: list[str] = []
    entries: dict[str, dict] = {}
    shard = None
    bar = tqdm(total=len(files), unit="image", desc=f"{format} shards", disable=bars_disabled(progress))
    try:
        for i, (path, label) in enumerate(zip(files, labels)):
            if i % shard_size == 0:
                if shard is not None:
                    shard.close()
                shard = writer(os.path.join(work, f"shard-{len(paths):06d}"))
                paths.append(shard.path)
                entries[os.path.basename(shard.path)] = {"samples": 0}
            payload, key = _payload(path)
            assert shard is not None
            shard.add(f"{i:09d}", payload, key, int(label))
            entries[os.path.basename(shard.path)]["samples"] += 1
            bar.update()
    finally:
        if shard is not None:
            shard.close()
        bar.close()
    return entries, paths


SHARD_SET_FILES = re.compile(r"^(manifest\.json|shard-\d{6}\.(tar|tfrecord|idx))$")
"""The names a shard set this converter wrote holds: all ``--overwrite`` may replace."""


def _check_replaceable(out: str, overwrite: bool) -> None:
    """UserError unless ``out`` is missing, empty, or (with ``overwrite``) a shard set this
    converter wrote: a manifest and shard files only, so nothing else is ever deleted."""
    names = os.listdir(out) if os.path.isdir(out) else []
    if not names:
        return
    if not overwrite:
        raise UserError(
            f"{out} already holds {len(names)} file(s); pass --overwrite (overwrite=True) to replace "
            "its shard set as a whole, or name a new or empty folder"
        )
    others = sorted(n for n in names if not SHARD_SET_FILES.match(n))
    if "manifest.json" not in names or others:
        what = f"other files ({', '.join(others[:3])}{' …' if len(others) > 3 else ''})" if others else "no manifest"
        raise UserError(
            f"{out} holds {what}: not a shard set fastpolicy wrote, so --overwrite does not delete it; "
            "name a new or empty folder"
        )


def _publish(work: str, target: str, overwrite: bool) -> None:
    """Rename the finished ``work`` folder to ``target``: onto a missing or empty one in one step
    (POSIX replaces an empty folder); a shard set already there (``overwrite``, checked again
    now) is moved aside first and removed once the new one is in place, or moved back if that fails.
    Between those two renames ``target`` is briefly missing: a reader then finds no set, never half of one."""
    try:
        os.rename(work, target)
        return
    except OSError:
        if not os.path.isdir(target):
            raise
    _check_replaceable(target, overwrite)  # another converter may have published meanwhile
    old = f"{target}.old-{os.getpid()}"
    os.rename(target, old)
    try:
        os.rename(work, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


class _TarShard:
    def __init__(self, stem: str):
        self.path = stem + ".tar"
        self.tar = tarfile.open(self.path, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115 (see close)

    def add(self, key: str, image: bytes, ext: str, label: int) -> None:
        for name, data in ((f"{key}.{ext}", image), (f"{key}.cls", str(label).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            self.tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self.tar.close()


class _TFRecordShard:
    def __init__(self, stem: str):
        from tfrecord.writer import TFRecordWriter

        self.path, self.index = stem + ".tfrecord", open(stem + ".idx", "w")  # noqa: SIM115 (see close)
        self.writer = TFRecordWriter(self.path)

    def add(self, key: str, image: bytes, ext: str, label: int) -> None:
        offset = self.writer.file.tell()
        self.writer.write({"image/encoded": (image, "byte"), "image/class/label": (label, "int")})
        self.index.write(f"{offset} {self.writer.file.tell() - offset}\n")

    def close(self) -> None:
        self.writer.close()
        self.index.close()


def describe_shards(folder: str) -> ShardManifest:
    """Write a manifest for the shards already in ``folder`` (made by another tool): every shard's
    samples (good or bad, counted by a header scan), size and SHA-256; classes ``"0"`` … up to the
    largest label read (every label is read: tar label members, TFRecord Examples). Returns it."""
    listed = list_shards(folder)
    if listed is None:
        raise UserError(f"{folder}: holds no webdataset (.tar) or TFRecord (.tfrecord) shards to describe")
    shard_format, shards = listed
    keys, entries, largest, bad = ShardKeys(), {}, -1, []
    for shard in shards:
        if shard_format == "webdataset":
            samples, problems = scan_tar(shard, keys, "header")
        else:
            samples, problems = scan_tfrecord(shard, index_path(shard, keys), keys, "header")
        count = len(samples) + len(problems)  # (TFRecord labels read below are of these samples)
        if shard_format == "tfrecord":
            problems += read_tfrecord_labels(shard, samples, keys)
        bad += [(shard, key, reason) for key, reason in problems]
        largest = max([largest, *(s.value for s in samples if s.value is not None)])
        entries[os.path.basename(shard)] = {
            "samples": count,
            "bytes": os.path.getsize(shard),
            "sha256": sha256_of(shard),
        }
    if largest < 0:
        raise UserError(f"{folder}: no readable labels in its shards ({bad[:1]})")
    manifest = ShardManifest(os.path.abspath(folder), shard_format, tuple(str(i) for i in range(largest + 1)), entries)
    manifest.write()
    return manifest


def add_shards_flags(parser) -> None:
    """The arguments of ``fastpolicy shards DIR OUT [--format F] [--shard-size N] [--classes FROM]
    [--overwrite] [--on-bad skip]`` and ``fastpolicy shards --describe DIR``."""
    parser.add_argument(
        "folder", help="an ImageNet-layout image folder (root/<class>/<image>); with --describe, shards"
    )
    parser.add_argument("out", nargs="?", help="the folder the shard set is written to (new or empty)")
    parser.add_argument("--format", choices=FORMATS, default="webdataset", help="shard format (default webdataset)")
    from ..config import positive_int

    parser.add_argument("--shard-size", type=positive_int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument(
        "--classes",
        metavar="FROM",
        help="take the class map of this shard folder (e.g. the training set's), so labels mean the same classes",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the shard set already in OUT as a whole")
    parser.add_argument(
        "--on-bad",
        choices=("raise", "skip"),
        default="raise",
        help="unreadable file names and empty class folders: stop (default) or leave them out",
    )
    parser.add_argument(
        "--describe",
        action="store_true",
        help="write manifest.json for shards made elsewhere in FOLDER (reads every shard once)",
    )


def shards_command(args) -> int:
    """Run ``fastpolicy shards``: convert (a progress bar unless ``-q``), then print the shards
    written; or, with ``--describe``, write the manifest of existing shards."""
    if args.describe:
        if args.out is not None:
            raise UserError("--describe takes one folder (the shards'), not an output folder")
        manifest = describe_shards(args.folder)
        count = sum(e["samples"] for e in manifest.shards.values())
        print(f"{manifest.path}: {len(manifest.shards)} {manifest.shard_format} shards, {count} samples")
        return 0
    if args.out is None:
        raise UserError("name the folder to write the shards to: fastpolicy shards FOLDER OUT")
    paths = write_shards(
        args.folder,
        args.out,
        args.format,
        args.shard_size,
        progress=args.verbosity >= 0,
        classes_from=args.classes,
        overwrite=args.overwrite,
        on_bad=args.on_bad,
    )
    print(f"{len(paths)} {args.format} shards in {args.out}")
    return 0
