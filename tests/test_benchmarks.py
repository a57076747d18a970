"""Benchmark scripts run end to end (tiny sizes; CPU emulator for the kernels) and record what they must."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fastpolicy import OP_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_policy_stage_benchmark_smoke(tmp_path):
    pytest.importorskip("nvidia.dali")
    import policy_stage

    assert sorted(sum(policy_stage.families().values(), [])) == sorted(OP_NAMES)
    out = tmp_path / "stage.json"
    policy_stage.main(["--emulate", "--n", "16", "--size", "24", "--warmup", "1", "--repeats", "1",
                       "--out", str(out)])
    result = json.loads(out.read_text())
    assert {"command", "date", "machine", "versions", "settings"} <= set(result)
    assert [r["family"] for r in result["results"]] == list(policy_stage.families()) + ["adversarial_policies"]
    for row in result["results"]:
        assert row["kernels_images_per_s"] > 0 and row["ratio_kernels_over_dali"] > 0
