"""The regime sweep (fastpolicy/reproduce/regime.py): its pre-registered rule on boundary values,
the cheapest-cell choice, the studies' magnitude scale, and the whole sweep at the smoke budget (slow)."""

from __future__ import annotations

import json

import pytest

from fastpolicy.reproduce import regime


@pytest.mark.parametrize(
    "base, train, ta, passed",
    [
        ([20.0, 20.0], [15.0, 15.0], [19.0, 19.0], True),  # gap exactly 5, gains exactly 1: both hold
        ([20.0, 20.0], [15.01, 15.01], [19.0, 19.0], False),  # gap 4.99
        ([20.0, 20.0], [15.0, 15.0], [19.0, 19.01], False),  # one seed gains 0.99
        ([20.0, 20.0], [16.0, 14.0], [18.0, 18.0], True),  # the gap is the seeds' mean (4 and 6)
        ([20.0, 20.0], [10.0, 10.0], [21.0, 15.0], False),  # a large mean gain does not excuse one seed
    ],
)
def test_the_rule_on_its_boundaries(base, train, ta, passed):
    rule = regime.qualifies(base, train, ta)
    assert rule["passed"] is passed
    assert rule["overfit_points"] == pytest.approx(sum(b - t for b, t in zip(base, train)) / len(base))
    assert rule["gains"] == pytest.approx([b - t for b, t in zip(base, ta)])


def test_the_rule_refuses_unpaired_seeds():
    with pytest.raises(ValueError, match="equally long"):
        regime.qualifies([1.0, 2.0], [1.0], [1.0, 2.0])


def _result(cell, passed, ta=18.0, half=18.5):
    return {
        "cell": cell.key,
        "cost": regime.cost(cell),
        "rule": {"passed": passed},
        "arms": {"trivialaugment": {"test_mean": ta}, "trivialaugment_half": {"test_mean": half}},
    }


def test_the_cheapest_qualifying_cell_is_chosen():
    a, b, c = regime.Cell(1024, 160), regime.Cell(512, 160), regime.Cell(1024, 80)
    assert regime.cost(regime.Cell(512, 80, 64)) == 4 * regime.cost(regime.Cell(512, 80))
    results = [_result(a, True), _result(b, True), _result(c, False)]
    assert regime.choose(results)["cell"] == b.key
    assert regime.choose([_result(c, False)]) is None
    # equal cost: the first listed wins (the sweep lists cells cheapest first, in CELLS' order)
    assert regime.choose([_result(c, True), _result(b, True)])["cell"] == c.key


def test_the_studies_take_the_better_trivialaugment_scale():
    cell = regime.Cell(512, 80)
    assert regime.study_magnitude_scale(_result(cell, True, ta=18.0, half=17.9)) == 0.5
    assert regime.study_magnitude_scale(_result(cell, True, ta=18.0, half=18.0)) == 1.0
    assert regime.study_magnitude_scale(_result(cell, True, ta=17.0, half=18.0)) == 1.0


@pytest.mark.slow
def test_the_smoke_sweep_writes_its_record(tmp_path):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.cli import main

    assert main(["reproduce", "regime", "--budget", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    record = json.loads((tmp_path / "regime_smoke.json").read_text())
    ran = [c["cell"] for c in record["cells"]]
    passed = [c["rule"]["passed"] for c in record["cells"]]
    # cheapest first; the sweep stops at the first qualifying cell
    assert ran == ["128x2w8", "128x3w8"][: len(ran)] and (len(ran) == 2 or passed[0])
    assert len(record["runs"]) == len(ran) * 2 * len(regime.ARMS)
    assert record["git"]["commit"] is None or len(record["git"]["commit"]) == 40
    assert record["commits"] and all("commit" in r for r in record["runs"])
    for c in record["cells"]:
        rule = regime.qualifies(
            c["arms"]["baseline"]["test"], c["arms"]["baseline"]["train"], c["arms"]["trivialaugment"]["test"]
        )
        assert rule == c["rule"]
    assert (record["chosen"] is None) == (not any(c["rule"]["passed"] for c in record["cells"]))
    assert (tmp_path / "regime_smoke.md").read_text().count("| 128 × ") == len(ran) * len(regime.ARMS)
    assert (tmp_path / "regime_smoke.png").stat().st_size > 0
    # a rerun reuses every finished run
    stamp = (tmp_path / "128x2w8" / "baseline" / "seed0" / "study.json").stat().st_mtime_ns
    assert main(["reproduce", "regime", "--budget", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "128x2w8" / "baseline" / "seed0" / "study.json").stat().st_mtime_ns == stamp


def test_a_study_reads_the_regime_record_it_is_given(tmp_path, capsys):
    from fastpolicy.cli import main

    missing = str(tmp_path / "mine" / "regime.json")
    argv = ["reproduce", "adversarial", "--out", str(tmp_path / "runs"), "--regime", missing, "--no-progress"]
    assert main(argv) == 2 and f"{missing}: no regime record" in capsys.readouterr().err
    assert main(["reproduce", "regime", "--regime", missing]) == 2
    assert "the sweep writes one" in capsys.readouterr().err
