"""The ``shards`` scenario: the same images as an image folder, webdataset tars and TFRecord files.

The benchmark's tree is converted with :func:`~fastpolicy.data.shards.write_shards` (the
converter behind ``fastpolicy shards``; images stored as they are, so every format decodes
the same JPEG bytes) into ``out``, then :class:`~fastpolicy.loader.PolicyDALILoader` reads
each format (DALI's file, webdataset and TFRecord readers) twice: decode only (M = 1, no
policy: the reader and decoder alone) and M = 8 with a standard policy on every copy. The
three formats of a case run interleaved (:func:`~.timing.interleaved_rates`); ratios are to
the folder.
"""

from __future__ import annotations

import functools
import os

from ..data.shards import write_shards
from .peers import NAMES, fastpolicy_loader
from .timing import Paced, interleaved_rates

FORMATS = {"image folder": None, "webdataset shards": "webdataset", "TFRecord shards": "tfrecord"}
"""Contender label → shard format (None: the folder itself)."""


def convert(root: str, out: str, shard_size: int) -> dict[str, str]:
    """Label of :data:`FORMATS` → what the loader reads: ``root`` itself, or the folder of
    shards of ``shard_size`` images written under ``out`` (``out/webdataset``, ``out/tfrecord``)."""
    data = {}
    for label, fmt in FORMATS.items():
        if fmt is None:
            data[label] = root
        else:
            folder = os.path.join(out, fmt)
            write_shards(root, folder, fmt, shard_size, progress=False)
            data[label] = folder
    return data


def run_shards(
    root: str,
    out: str,
    N: int,
    M: int,
    policy: str,
    device: str,
    threads: int,
    warmup: int,
    batches: int,
    repeats: int,
    shard_size: int = 64,
) -> list[dict]:
    """Rows ``{"scenario": "shards", "case", "M", "contender": "fastpolicy, <format>", "images_per_s"}``
    for the decode-only case (M = 1) and ``policy`` at ``M``; the folder's row first."""
    data = convert(root, out, shard_size)
    rows = []
    for case, copies, applied in (("decode only", 1, None), (NAMES[policy], M, policy)):
        contenders = {
            f"fastpolicy, {label}": Paced(
                functools.partial(fastpolicy_loader, path, N, copies, applied, device, threads), warmup, batches
            )
            for label, path in data.items()
        }
        rates = interleaved_rates(contenders, copies * N, repeats)
        for contender, rate in rates.items():
            rows.append(
                {
                    "scenario": "shards",
                    "case": case,
                    "M": copies,
                    "device": device,
                    "contender": contender,
                    "images_per_s": rate,
                }
            )
            print(f"  shards   M={copies}  {case:22s} {contender:34s} {rate:10.1f} img/s", flush=True)
    return rows


__all__ = ["FORMATS", "convert", "run_shards"]
