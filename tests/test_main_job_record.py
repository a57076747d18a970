"""The README's main-job figures are the committed record's (benchmarks/results/main_job.json,
written by benchmarks/main_job.py on an idle machine)."""

from __future__ import annotations

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD = os.path.join(ROOT, "benchmarks", "results", "main_job.json")


def _script():
    spec = importlib.util.spec_from_file_location("main_job", os.path.join(ROOT, "benchmarks", "main_job.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_quotes_the_main_job_record():
    with open(RECORD, encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["git"]["commit"] and record["machine"]["cores"] and record["date"]
    assert record["machine"]["load_at_start"][0] < record["machine"]["cores"] / 2  # started idle
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert _script().sentence(record) in readme


def test_a_record_is_never_overwritten(tmp_path):
    import pytest

    existing = tmp_path / "main_job.json"
    existing.write_text("{}")
    with pytest.raises(SystemExit):
        _script().main(["--out", str(existing)])
    assert existing.read_text() == "{}"


def test_the_readme_quotes_the_ci_run_record():
    spec = importlib.util.spec_from_file_location("ci_time", os.path.join(ROOT, "benchmarks", "ci_time.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(os.path.join(ROOT, "benchmarks", "results", "ci_run.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["rc"] == 0 and record["failed"] == 0 and record["passed"] > 0 and record["commit"]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        assert module.sentence(record) in handle.read()
    log = "===== 3 passed, 1 skipped, 1 failed in 12.50s (0:00:12) =====\nrc=1 seconds=20\n"
    assert module.parse(log) == {"rc": 1, "seconds": 20, "test_seconds": 12.5, "passed": 3, "skipped": 1, "failed": 1}
