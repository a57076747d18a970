"""Record a fresh-clone CI run's time from its log (the README quotes the record).

    git clone . /tmp/ci && (cd /tmp/ci && start=$(date +%s); bash .ci/run > /tmp/ci.log 2>&1;
        echo "rc=$? seconds=$(( $(date +%s) - start ))" >> /tmp/ci.log)
    python benchmarks/ci_time.py /tmp/ci.log --commit $(git -C /tmp/ci rev-parse HEAD) \
        --out benchmarks/results/ci_run.json

The log's last line is ``rc=N seconds=S`` (the whole run: install, lint, types, tests); pytest's
summary line gives the tests' own seconds and counts. A record is never overwritten.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys


def parse(text: str) -> dict:
    """``{"rc", "seconds", "test_seconds", "passed", "skipped", "failed"}`` of a CI log."""
    end = re.findall(r"^rc=(\d+) seconds=(\d+)$", text, re.M)
    summary = re.findall(r"^=+ (.*) in ([\d.]+)s(?: \([\d:]+\))? =+$", text, re.M)
    if not end or not summary:
        raise ValueError("not a CI log: no 'rc=N seconds=S' line or no pytest summary line")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|skipped|failed|errors?)", summary[-1][0])}
    return {
        "rc": int(end[-1][0]),
        "seconds": int(end[-1][1]),
        "test_seconds": float(summary[-1][1]),
        "passed": counts.get("passed", 0),
        "skipped": counts.get("skipped", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
    }


def sentence(record: dict) -> str:
    """The README's words for a record (``tests/test_main_job_record.py`` checks them)."""
    return (
        f"{record['seconds'] / 60:.1f} minutes on a {record['machine']['cores']}-core CPU in a fresh-clone CI run "
        f"({record['date'][:10]}, install and lint included; the tests alone {record['test_seconds'] / 60:.1f}: "
        "`benchmarks/results/ci_run.json`)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="the CI run's log")
    parser.add_argument("--commit", required=True, help="the commit the clone ran")
    parser.add_argument("--out", required=True, help="the record to write (refused if it exists)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"{args.out} exists; a record is never overwritten: name another --out")
    from fastpolicy.bench.record import cpu_model, write_new

    with open(args.log, encoding="utf-8", errors="replace") as handle:
        found = parse(handle.read())
    record = {
        "benchmark": "ci_run",
        "command": "git clone . CLONE && cd CLONE && bash .ci/run",
        "commit": args.commit,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
    } | found
    write_new(args.out, record)
    print(f"wrote {args.out}: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
