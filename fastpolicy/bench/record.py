"""What every benchmark result records beside its numbers: machine, versions, command, date."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import sys


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def gpu() -> dict | None:
    """Name, driver and CUDA runtime of GPU 0, or None without one."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        import cupy

        driver = cupy.cuda.runtime.driverGetVersion()
        return {
            "name": torch.cuda.get_device_name(0),
            "driver_cuda_version": driver,
            "runtime": cupy.cuda.runtime.runtimeGetVersion(),
        }
    except Exception:  # torch without CUDA, or no CuPy: name what we can
        import torch

        return {"name": torch.cuda.get_device_name(0)} if torch.cuda.is_available() else None


def load_average() -> list[float] | None:
    """The machine's load average over 1, 5 and 15 minutes (runnable processes; compare with
    the cores), or None where the system has none. Above about half the cores, other work
    shared the machine: trust the interleaved ratios, not the absolute numbers."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def start(path: str | None, flag: str = "--json") -> list[float] | None:
    """Before a benchmark runs: SystemExit naming ``path`` if a record is there already (a record
    is never overwritten, and no run is spent to find out), then :func:`load_average` at the
    start (the idle gate's input)."""
    if path and os.path.lexists(path):
        raise SystemExit(f"{path} exists; a record is never overwritten: name another {flag}")
    return load_average()


def versions(*modules: str) -> dict:
    """``module → __version__`` for each importable module (None where missing)."""
    out = {}
    for name in modules:
        try:
            module = __import__(name, fromlist=["__version__"])
            out[name] = getattr(module, "__version__", "unknown")
        except ImportError:
            out[name] = None
    return out


def command_line() -> str:
    """How this process was started, as a user would type it (``fastpolicy bench …`` or
    ``python benchmarks/x.py …``)."""
    program = sys.argv[0]
    if os.path.basename(program) in ("fastpolicy", "cli.py", "__main__.py"):
        return " ".join(["fastpolicy", *sys.argv[1:]])
    with contextlib.suppress(ValueError):
        program = os.path.relpath(program)
    return " ".join(["python", program, *sys.argv[1:]])


def write_new(path: str, record: dict) -> None:
    """Write ``record`` as JSON to ``path``, a new file (folders made), atomically: a record is
    never overwritten (FileExistsError) and never read half-written."""
    from .. import atomic

    if os.path.lexists(path):
        raise FileExistsError(f"{path} exists; a record is never overwritten: name another --out")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic.write_json(path, record)


ENVIRONMENT = ("FASTPOLICY_NUMPY_SAMPLER", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "CXX")
"""Environment variables that change what a benchmark measures, recorded where set."""


def git_commit() -> str | None:
    """The checkout's commit (``git rev-parse HEAD``, with ``+dirty`` for uncommitted changes to
    tracked files), or None outside a git checkout."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write(name: str, settings: dict, results, path: str, note: str, modules=(), load_at_start=None, extra=None) -> dict:
    """Write the result JSON to ``path`` (folders created) and return it. ``load_at_start``:
    :func:`load_average` before the benchmark ran (recorded beside the one at the end, which
    counts the benchmark's own threads). ``extra``: more top-level keys (e.g. a benchmark's
    pre-registered goals and whether they were met)."""
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "gpu": gpu(), "load_average": load_average()}
    if load_at_start is not None:
        machine["load_average_at_start"] = load_at_start
    record = {
        "benchmark": name,
        "command": command_line(),
        "commit": git_commit(),
        "environment": {key: os.environ[key] for key in ENVIRONMENT if key in os.environ},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine,
        "versions": versions("fastpolicy", "numpy", "torch", *modules),
        "settings": settings,
        "note": note,
        "results": results,
    } | (extra or {})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"wrote {path}")
    return record
