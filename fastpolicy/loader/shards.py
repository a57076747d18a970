"""Sharded datasets for the loader: webdataset tars and TFRecord files, read by DALI's readers.

A :class:`ShardDataset` lists its shards' samples when opened (tar headers and label
members; TFRecord index files), refuses or skips bad ones (``FileChecks.on_bad``), and
hands DALI index files of the good samples only (webdataset: DALI's ``v1.2`` format;
TFRecord: ``tfrecord2idx``'s), so the reader never meets a sample it was told to skip.
Dataset index ``i`` is the ``i``-th good sample in shard order. DALI reports each sample's
``source_info`` (shard path and byte offset), which :meth:`ShardDataset.resolve` maps back
to its index; labels come from the shards themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import weakref

import numpy as np

from ..data.manifest import manifest_key, manifests_for, shared_classes
from ..data.shards import (
    BadShardError,
    Sample,
    ShardKeys,
    index_path,
    list_shards,
    read_tfrecord_labels,
    scan_tar,
    scan_tfrecord,
)
from ..log import get as get_logger
from .settings import FileChecks

log = get_logger(__name__)


DECODE_SKIP_HINT = "pass --verify decode --on-bad skip (verify='decode', on_bad='skip' in Python) to leave them out"
"""How to leave bad shard samples out, in both spellings: a run's flags, the loader's arguments."""


class ShardDataset:
    """Samples of webdataset or TFRecord shards.

    Attributes:
        format: ``"webdataset"`` or ``"tfrecord"``; shards: their absolute paths.
        samples: per shard, its good :class:`~fastpolicy.data.shards.Sample` s.
        index_files: per shard, the index file DALI reads (ours for webdataset and for
            TFRecord shards with skipped samples, else the shard's own).
        shape: None (crops of ``image_size``); channels: 3 (decoded as RGB).
    """

    kind = "shards"
    shape = None
    channels = 3
    default_baseline = "imagenet"
    baselines = ("imagenet", "center")

    def __init__(self, format: str, shards: list[str], keys: ShardKeys, checks: FileChecks):
        manifests = manifests_for(shards)  # refused without one: a set's completeness is its manifest
        where = shards[0] if len(shards) == 1 else f"{len(shards)} shards"
        self.classes: tuple[str, ...] = shared_classes(manifests.values(), where)
        if keys.classes is None:
            keys = dataclasses.replace(keys, classes=len(self.classes))
        elif keys.classes != len(self.classes):
            raise ValueError(f"ShardKeys.classes {keys.classes}, but the shards' manifest lists {len(self.classes)}")
        for shard in shards:  # size always; the whole file's SHA-256 when every image is decoded anyway
            manifests[manifest_key(shard)].check_file(shard, checksum=checks.verify == "decode")
        self._manifests = manifests
        self.format, self.shards, self.keys = format, shards, keys
        self.skipped: list[tuple[str, str, str]] = []
        self._digest = hashlib.sha256("\t".join(self.classes).encode() + b"\n")  # a class map is data too
        samples = [self._scan_shard(shard, checks.verify) for shard in shards]
        if self.skipped and checks.on_bad == "raise":
            raise BadShardError(self.skipped, hint="pass --on-bad skip (on_bad='skip' in Python) to leave them out")
        if self.skipped:
            log.warning(
                f"fastpolicy: left out {len(self.skipped)} bad shard samples, e.g. {BadShardError(self.skipped[:1])}"
            )
        self._index(samples, own=bool(self.skipped))

    def _index(self, samples: list[list[Sample]], own: bool) -> None:
        """Take ``samples`` (per shard) as this dataset's and write the index files DALI reads:
        webdataset always; TFRecord only with ``own`` (samples left out), else the shards' own."""
        self.samples = samples
        self._folder = tempfile.mkdtemp(prefix="fastpolicy-shards-")
        weakref.finalize(self, shutil.rmtree, self._folder, True)
        self.index_files: list[str] = []
        for number, (shard, kept) in enumerate(zip(self.shards, samples)):
            index = os.path.join(self._folder, f"{number:06d}.idx")
            if self.format == "webdataset":
                with open(index, "w") as out:
                    out.write(f"v1.2 {len(kept)}\n")
                    for s in kept:
                        _, offset, size = s.image
                        label_offset, label_size = s.label or (0, 0)
                        token = "".join(c if c.isalnum() or c in "._-" else "_" for c in s.key)  # no ':' or space
                        out.write(f"img {offset} {size} {token} cls {label_offset} {label_size} {token}\n")
            elif own:
                with open(index, "w") as out:
                    out.writelines(f"{s.image[1]} {s.image[2]}\n" for s in kept)
            else:
                index = index_path(shard, self.keys)
            self.index_files.append(index)
        counts = [len(s) for s in samples]
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._offsets = [{s.image[1]: i for i, s in enumerate(kept)} for kept in samples]
        self._shard_of = {path: n for n, path in enumerate(self.shards)}
        if self.starts[-1] == 0:
            shards = self.shards
            raise BadShardError([(shards[0] if len(shards) == 1 else f"{len(shards)} shards", "-", "no samples")])

    @classmethod
    def open(cls, data, keys: ShardKeys | None = None, checks: FileChecks | None = None) -> ShardDataset:
        """``data``: a brace pattern (``train-{000000..001023}.tar``), a glob, a folder of
        shards or a list of them (:func:`~fastpolicy.data.shards.list_shards`)."""
        found = list_shards(data)
        if found is None:
            raise ValueError(f"{data!r} names no webdataset (.tar) or TFRecord (.tfrecord) shards")
        return cls(*found, keys or ShardKeys(), checks or FileChecks())

    def _scan_shard(self, shard: str, verify: str) -> list[Sample]:
        """The good samples of ``shard``; its bad ones go to :attr:`skipped`; the fingerprint
        takes its name, size (and TFRecord index) and every good sample's key, offset and size."""
        if self.format == "webdataset":
            samples, bad = scan_tar(shard, self.keys, verify)
            self._digest.update(f"{os.path.basename(shard)}\t{os.path.getsize(shard)}\n".encode())
        else:
            original = index_path(shard, self.keys)
            samples, bad = scan_tfrecord(shard, original, self.keys, verify)
            with open(original, "rb") as handle:
                self._digest.update(f"{os.path.basename(shard)}\t{os.path.getsize(shard)}\n".encode() + handle.read())
        for s in samples:
            self._digest.update(f"{s.key}\t{s.image[1]}\t{s.image[2]}\n".encode())
        self._manifests[manifest_key(shard)].check_count(shard, len(samples) + len(bad))
        if not samples and not bad:
            bad = [("-", "empty shard: no samples")]
        self.skipped += [(shard, key, reason) for key, reason in bad]
        return samples

    def subset(self, indices) -> ShardDataset:
        """A dataset of the samples at dataset indices ``indices`` (int, any order; kept in
        shard order, each once), reading the same shards through index files of its own;
        its fingerprint covers this one's and the indices. A search's split of training shards
        into its training and held-out parts (:func:`fastpolicy.train.data.build_search_loaders`)."""
        chosen = np.unique(np.asarray(indices, dtype=np.int64))
        if len(chosen) == 0 or chosen[0] < 0 or chosen[-1] >= len(self):
            raise ValueError(f"subset indices must be a non-empty selection of [0, {len(self)})")
        part = object.__new__(ShardDataset)
        part.format, part.shards, part.keys, part.skipped = self.format, self.shards, self.keys, []
        part.classes, part._manifests = self.classes, self._manifests
        part._digest = self._digest.copy()
        part._digest.update(b"subset\n" + chosen.tobytes())
        shard_of = np.searchsorted(self.starts, chosen, side="right") - 1
        samples: list[list[Sample]] = [[] for _ in self.shards]
        for shard, index in zip(shard_of.tolist(), chosen.tolist()):
            samples[shard].append(self.samples[shard][index - int(self.starts[shard])])
        part._index(samples, own=True)
        return part

    def names(self) -> list[str]:
        """``"<shard file name>/<sample key>"`` of every sample, by dataset index (how a
        search's ``split.json`` names shard samples)."""
        return [f"{os.path.basename(shard)}/{s.key}" for shard, kept in zip(self.shards, self.samples) for s in kept]

    @classmethod
    def baseline(cls, baseline: str | None) -> str:
        """``baseline``, or the default (None); ValueError for one that needs arrays of one size."""
        baseline = baseline or cls.default_baseline
        if baseline not in cls.baselines:
            raise ValueError(f"baseline={baseline!r} is for in-memory arrays; shards use 'imagenet' or 'center'")
        return baseline

    def __len__(self) -> int:
        return int(self.starts[-1])

    def reader(self) -> tuple[str, dict]:
        """DALI's reader and its arguments (without sharding, order and seed); shards left
        without samples are not given to it."""
        kept = [n for n, samples in enumerate(self.samples) if samples]
        shards, indexes = [self.shards[n] for n in kept], [self.index_files[n] for n in kept]
        if self.format == "webdataset":
            return "webdataset", dict(
                paths=shards, index_paths=indexes, ext=["img", "cls"], missing_component_behavior="error"
            )
        return "tfrecord", dict(
            path=shards,
            index_path=indexes,
            image_feature=self.keys.image_feature,
            label_feature=self.keys.label_feature,
        )

    def resolve(self, infos: list[str], raw_labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, labels)``, int64[n] each, of the samples DALI read: ``infos`` are their
        ``source_info`` strings, ``raw_labels`` their label outputs (decimal text bytes or an
        int64). BadShardError names the shard and sample of a label out of range."""
        indices, labels = np.empty(len(infos), np.int64), np.empty(len(infos), np.int64)
        for i, (info, raw) in enumerate(zip(infos, raw_labels)):
            if self.format == "webdataset":
                path, offset = info.rsplit(":", 2)[:2]
            else:
                path, offset = info.rsplit(" at index ", 1)
            shard = self._shard_of[path]
            local = self._offsets[shard][int(offset)]
            indices[i] = self.starts[shard] + local
            try:
                labels[i] = int(bytes(raw).strip()) if self.format == "webdataset" else int(raw.reshape(-1)[0])
                reason = self.keys.check_label(int(labels[i]))
            except ValueError:
                reason = f"label {bytes(raw)[:20]!r} is not an integer"
            if reason is not None:
                raise BadShardError([(path, self.samples[shard][local].key, reason)])
        return indices, labels

    def class_count(self, read: bool = False) -> int | None:
        """Classes: ``ShardKeys.classes``, else the largest label + 1 where the scan read every
        label (webdataset; TFRecord opened with ``verify="decode"``), else None — or, with
        ``read``, after reading the TFRecord labels not yet read (every record is read once,
        no image decoded; BadShardError names a missing or out-of-range label)."""
        if self.keys.classes is not None:
            return self.keys.classes
        values = [s.value for samples in self.samples for s in samples]
        if any(v is None for v in values) and read:
            log.info(f"fastpolicy: reading the labels of {len(self)} TFRecord samples to count the classes …")
            bad = [
                (shard, key, reason)
                for shard, kept in zip(self.shards, self.samples)
                for key, reason in read_tfrecord_labels(shard, kept, self.keys)
            ]
            if bad:
                raise BadShardError(
                    bad,
                    hint=DECODE_SKIP_HINT,
                )
            values = [s.value for samples in self.samples for s in samples]
        return None if any(v is None for v in values) else max(v for v in values if v is not None) + 1

    def fingerprint(self) -> dict:
        """``{"kind": "webdataset" | "tfrecord", "images": count, "sha256": 16 hex}`` over the
        shards' names and sizes, the TFRecord index files and every kept sample's key, offset
        and size (nothing is hashed of the images themselves)."""
        return {"kind": self.format, "images": len(self), "sha256": self._digest.hexdigest()[:16]}

    def explain(self, error: Exception, workers: int) -> None:
        """Raise :class:`BadShardError` naming the samples behind a failed DALI read (every
        shard is rescanned with ``verify="decode"``); returns if all decode."""
        message = str(error).splitlines()
        log.warning(
            f"fastpolicy: DALI failed to read a batch ({message[-1] if message else error}); "
            f"decoding all {len(self)} samples of {len(self.shards)} shards to find the bad ones …"
        )
        bad = []
        for shard in self.shards:
            if self.format == "webdataset":
                found = scan_tar(shard, self.keys, "decode")[1]
            else:
                found = scan_tfrecord(shard, index_path(shard, self.keys), self.keys, "decode")[1]
            bad += [(shard, key, reason) for key, reason in found]
        if bad:
            raise BadShardError(
                bad,
                hint=DECODE_SKIP_HINT,
            ) from error
