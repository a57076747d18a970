"""The README's main job, timed and checked: ``fastpolicy search adversarial`` as the README runs it.

Runs the default search ``--repeats`` times one after another (each in a new folder, its own
process, as a user runs it) and records each run's wall-clock seconds (process start to exit,
imports included), the controller's KL from its start, its shuffled-reward null (95th
percentile), whether it moved past it, and the held-out accuracy; with the git commit, the machine
(CPU, cores, load averages before each run: run it idle) and the date. The README quotes the
record (``tests/test_main_job_record.py`` reads it from there).

    python benchmarks/main_job.py --out benchmarks/results/main_job.json   # a new record (refused if one is there)

Pre-registered goals (issue 36): a run takes at most :data:`GOAL_SECONDS` on an idle 2-core
machine and ends with a KL of at least :data:`GOAL_KL` nats.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

GOAL_SECONDS = 120.0
"""Most seconds the default search may take on an idle 2-core machine."""
GOAL_KL = 1.0
"""Least KL (nats) from its start the default search's controller must end with."""
COMMAND = ["fastpolicy", "-q", "search", "adversarial"]
RUN_TIMEOUT = 1800
"""Seconds after which one search is stopped as hung (an idle run takes about one minute)."""


IDLE_WAIT_SECONDS = 300
"""Longest wait for the machine to become idle (1-minute load under half its cores) before the first run."""


def wait_until_idle() -> list[float]:
    """Wait (at most :data:`IDLE_WAIT_SECONDS`) until the 1-minute load average is under half the
    cores; returns the load averages then (the record's evidence that the runs started idle; each
    run's own ``load_before`` counts the run before it)."""
    deadline = time.monotonic() + IDLE_WAIT_SECONDS
    while os.getloadavg()[0] >= (os.cpu_count() or 1) / 2 and time.monotonic() < deadline:
        time.sleep(5)
    return [round(v, 2) for v in os.getloadavg()]


def run_once(folder: str) -> dict:
    """One default search into ``folder``: ``{"seconds", "load_before", "kl", "null_p95",
    "above_null", "null_draws", "updates", "val_accuracy"}``."""
    load = [round(v, 2) for v in os.getloadavg()]
    start = time.perf_counter()
    subprocess.run([*COMMAND, "--out", folder], check=True, stdout=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
    seconds = time.perf_counter() - start
    with open(os.path.join(folder, "summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    null = summary["controller_null"]
    return {
        "seconds": round(seconds, 1),
        "load_before": load,
        "kl": null["kl"],
        "null_p95": null["null_p95"],
        "above_null": null["above_null"],
        "null_draws": len(null["null_kl"]),
        "updates": null["updates"],
        "val_accuracy": summary["epochs"][-1]["val_accuracy"],
    }


def sentence(record: dict) -> str:
    """The README's words for a record: the seconds' range, the KL's range, the null's largest 95th
    percentile, the date and the machine's cores (``tests/test_main_job_record.py`` checks them)."""
    runs = record["runs"]
    seconds, kls = [r["seconds"] for r in runs], [r["kl"] for r in runs]
    kl = f"{min(kls):.1f}" if f"{min(kls):.1f}" == f"{max(kls):.1f}" else f"{min(kls):.1f}–{max(kls):.1f}"
    return (
        f"{min(seconds):.0f}–{max(seconds):.0f} s in {len(runs)} idle runs on a {record['machine']['cores']}-core "
        f"CPU ({record['date'][:10]}), its controller ending {kl} nats from its start "
        f"where shuffled rewards move it at most {max(r['null_p95'] for r in runs):.2f} "
        f"(`benchmarks/results/main_job.json`)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="default searches, one after another (default 2)")
    parser.add_argument(
        "--out",
        default=os.path.join("runs", f"main_job-{datetime.date.today()}.json"),
        help="the record to write (refused if it exists; default runs/main_job-<date>.json)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be ≥ 1, got {args.repeats}")
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists; a record is never overwritten: name another --out")
    from fastpolicy.bench.record import cpu_model, write_new
    from fastpolicy.reproduce.record import git_state

    load_at_start = wait_until_idle()
    with tempfile.TemporaryDirectory() as work:
        runs = [run_once(os.path.join(work, f"run{k}")) for k in range(args.repeats)]
    seconds = [r["seconds"] for r in runs]
    record = {
        "benchmark": "main_job",
        "command": " ".join(COMMAND),
        "recorded_with": " ".join(["python", "benchmarks/main_job.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "git": git_state(),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_at_start": load_at_start},
        "goals": {"seconds_at_most": GOAL_SECONDS, "kl_at_least": GOAL_KL},
        "runs": runs,
        "met": {
            "seconds": max(seconds) <= GOAL_SECONDS,
            "kl": min(r["kl"] for r in runs) >= GOAL_KL,
            "above_null": all(r["above_null"] for r in runs),
        },
    }
    write_new(args.out, record)
    print(f"wrote {args.out}: {seconds} s, KL {[round(r['kl'], 2) for r in runs]} nats, met {record['met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
