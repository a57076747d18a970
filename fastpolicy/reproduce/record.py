"""What every study record holds and how it is written: one home for both studies.

A record is a JSON-able dict. :func:`header` gives its first keys (study, budget, UTC date,
the command that ran it, the git commit and whether the tree was clean, package versions,
machine); :func:`write` puts the record, its
Markdown table and its figure beside each other as ``<name>.json`` / ``.md`` / ``.png``,
each written atomically so a stopped study never leaves half a file.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
import sys
from collections.abc import Callable

from .. import atomic
from ..bench import record as bench_record

PACKAGES = ("fastpolicy", "torch", "numpy", "scipy", "nvidia.dali")


def command(argv: list[str]) -> str:
    """The command line as a user types it: ``fastpolicy <argv>`` whatever started the process
    (``python -m fastpolicy``, the console script, a path to ``__main__.py``, ``main(argv)``)."""
    return " ".join(["fastpolicy", *argv])


def versions() -> dict[str, str]:
    """Python's and each importable module's version of :data:`PACKAGES` (absent ones left out;
    the benchmarks' :func:`fastpolicy.bench.record.versions`)."""
    found = bench_record.versions(*PACKAGES)
    return {"python": sys.version.split()[0]} | {name: v for name, v in found.items() if v is not None}


@functools.cache
def git_state() -> dict:
    """``{"commit": 40 hex or None, "clean": bool or None}`` of the checkout this package runs from
    (None, None outside a git checkout, e.g. an installed wheel). ``clean``: no tracked file differs
    from the commit (untracked files, such as run folders, do not count). Read once per process."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(top) != os.path.realpath(root):  # an installed package inside another repo
        return {"commit": None, "clean": None}
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "clean": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "clean": None if status is None else status == ""}


def header(study: str, budget: str, command_line: str, threads: int) -> dict:
    """The first keys of a record: what ran, when (UTC, seconds), how, on which commit, with what and where."""
    return {
        "study": study,
        "budget": budget,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line,
        "git": git_state(),
        "versions": versions(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), {threads} thread(s) per run",
    }


def write(results: str, name: str, record: dict, table: str, plot: Callable[[str], object]) -> str:
    """Write ``record`` as ``results/<name>.json``, ``table`` as ``.md`` and call ``plot(path)`` for
    ``.png``; returns the JSON's path."""
    path = os.path.join(results, f"{name}.json")
    atomic.write_json(path, record)
    atomic.write_text(os.path.join(results, f"{name}.md"), table)
    plot(os.path.join(results, f"{name}.png"))
    return path


__all__ = ["PACKAGES", "command", "git_state", "header", "versions", "write"]
