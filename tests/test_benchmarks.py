"""Benchmark scripts run end to end (tiny sizes; CPU emulator for the kernels) and record what they must."""

from __future__ import annotations

import functools
import json
import operator
import sys
from pathlib import Path

import pytest
import torch

from fastpolicy import OP_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_policy_stage_benchmark_smoke(tmp_path):
    pytest.importorskip("nvidia.dali")
    import policy_stage

    assert sorted(functools.reduce(operator.iadd, policy_stage.families().values(), [])) == sorted(OP_NAMES)
    out = tmp_path / "stage.json"
    policy_stage.main(["--emulate", "--n", "16", "--size", "24", "--warmup", "1", "--repeats", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert {"command", "date", "machine", "versions", "settings"} <= set(result)
    assert [r["family"] for r in result["results"]] == [
        *list(policy_stage.families()),
        "adversarial_policies",
        "autoaugment",
        "randaugment",
        "trivialaugment_wide",
    ]
    for row in result["results"]:
        assert row["kernels_images_per_s"] > 0 and row["ratio_kernels_over_dali"] > 0
    assert set(result["goals"].values()) == {"not applicable"}  # a CPU run judges no device goal
    rows = [
        {"family": "adversarial_policies", "kernels_images_per_s": 1.2e6},
        {"family": "pointwise", "kernels_images_per_s": 3e6, "kernels_bandwidth_fraction_of_copy": 0.49},
        {"family": "histogram", "kernels_images_per_s": 2e6},
    ]
    assert list(policy_stage.goals(rows, applicable=True).values()) == ["met", "not met", "met"]
    rows[2]["kernels_images_per_s"] = 1.9e6  # pointwise / histogram = 1.58
    assert policy_stage.goals(rows, applicable=True)["histogram ops: within 1.5x of pointwise"] == "not met"


def _left_in(temp: Path) -> list[str]:
    """What is left in ``temp``, besides torch's compile cache (``torchinductor_<user>``: made
    once per user in the temporary directory by torch itself, and kept there on purpose)."""
    return sorted(p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_"))


def _temp_dir(tmp_path, monkeypatch) -> Path:
    """An empty folder made this process's (and its children's) temporary directory."""
    import tempfile

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_fastpolicy_bench_runs_every_cpu_scenario(tmp_path, monkeypatch):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.bench import report
    from fastpolicy.cli import main

    temp = _temp_dir(tmp_path, monkeypatch)
    out = tmp_path / "bench_cpu.json"
    assert (
        main(
            [
                "bench",
                "--device",
                "cpu",
                "--images",
                "16",
                "--batch",
                "4",
                "--M",
                "1",
                "2",
                "--batches",
                "1",
                "--warmup",
                "1",
                "--repeats",
                "1",  # each DataLoader run spawns its worker: one run per contender keeps this test short
                "--workers",
                "1",
                "--stage-n",
                "16",
                "--policies",
                "autoaugment",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert _left_in(temp) == []  # the generated tree and shards are gone
    result = json.loads(out.read_text())
    assert {"command", "date", "machine", "versions", "settings", "note"} <= set(result)
    rows = result["results"]
    # training needs a GPU
    assert {r["scenario"] for r in rows} == {"decode", "policy", "transform", "shards", "stage", "host"}
    for scenario, M in (("decode", 1), ("policy", 1), ("policy", 2)):
        group = [r for r in rows if r["scenario"] == scenario and r["M"] == M]
        assert group[0]["contender"].startswith("fastpolicy") and group[0]["ratio_to_fastpolicy"] == 1
        assert any(r["contender"].startswith("DALI") for r in group)
        assert any(r["contender"].startswith("torchvision") for r in group)
    transform = [r for r in rows if r["scenario"] == "transform"]
    assert [(r["case"], r["contender"].split()[0]) for r in transform] == [
        (f"AutoAugment ImageNet, {kind} input", contender)
        for kind in ("PIL", "tensor")
        for contender in ("fastpolicy", "torchvision")
    ]
    assert all(r["ratio_to_fastpolicy"] == 1 for r in transform[::2])
    shards = [(r["case"], r["M"], r["contender"]) for r in rows if r["scenario"] == "shards"]
    assert shards == [
        (case, M, f"fastpolicy, {kind}")
        for case, M in (("decode only", 1), ("AutoAugment ImageNet", 2))
        for kind in ("image folder", "webdataset shards", "TFRecord shards")
    ]
    stage = {r["case"] for r in rows if r["scenario"] == "stage"}
    assert stage == {
        "geometric",
        "pointwise",
        "histogram",
        "blend",
        "filter",
        "special",
        "adversarial_policies",
        "autoaugment",
        "randaugment",
        "trivialaugment_wide",
    }
    for case in ("autoaugment", "randaugment", "trivialaugment_wide"):  # the same policy in every contender
        contenders = {r["contender"] for r in rows if r["scenario"] == "stage" and r["case"] == case}
        assert any(c.startswith("fastpolicy") for c in contenders) and any("torchvision" in c for c in contenders)
        assert any(c.startswith("DALI auto_aug") for c in contenders)
    host = [r for r in rows if r["scenario"] == "host"]
    assert len(host) == 1 and host[0]["host_ms_per_batch"] > 0 and host[0]["M"] == 2 and host[0]["busy_cores"] > 0
    assert {"source", "source_alone", "stage_compute", "pack_and_upload", "assemble", "sample"} <= set(
        host[0]["parts_ms"]
    )
    alone = host[0]["host_alone_ms"]  # the regime check: the host steps with DALI idle
    assert set(alone) == {"sample", "sample_again", "pack_and_upload", "batch", "total"}
    assert alone["total"] == pytest.approx(alone["sample"] + alone["pack_and_upload"] + alone["batch"])
    assert all(r["images_per_s"] > 0 for r in rows)
    assert (tmp_path / "bench_cpu.png").stat().st_size > 0
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report.BEGIN}\nthe previous tables\n{report.END}\ntail\n")
    report.update_readme(str(readme), str(tmp_path))
    text = readme.read_text()
    assert (
        "the previous tables" not in text and "| geometric |" in text and "| AutoAugment ImageNet, PIL input |" in text
    )
    assert text.endswith("tail\n")


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_fastpolicy_bench_removes_its_files_after_ctrl_c_or_an_error(tmp_path, monkeypatch, stop):
    pytest.importorskip("nvidia.dali")
    from fastpolicy.bench import run

    temp = _temp_dir(tmp_path, monkeypatch)
    seen = []

    def interrupted(root, *args):
        seen.extend(Path(root).rglob("*.JPEG"))  # the tree was there while the scenario ran
        raise stop("stopped mid-run")

    monkeypatch.setattr(run, "run_transform", interrupted)
    with pytest.raises(stop, match="stopped mid-run"):
        run.main(["--device", "cpu", "--scenarios", "transform", "--images", "8", "--out", str(tmp_path / "x.json")])
    assert len(seen) == 8 and all(str(path).startswith(str(temp)) for path in seen)
    assert _left_in(temp) == []
    assert not (tmp_path / "x.json").exists()


def test_interleaved_runs_rotate_and_close_every_iterator():
    from fastpolicy.bench.timing import Paced, interleaved_rates

    events = []

    def contender(name: str):
        events.append(("open", name))
        try:
            while True:
                yield name
        finally:
            events.append(("close", name))

    contenders = {name: Paced(functools.partial(contender, name), 1, 2) for name in "abc"}
    rates = interleaved_rates(contenders, items_per_batch=4, repeats=3)
    assert set(rates) == {"a", "b", "c"} and all(rate > 0 for rate in rates.values())
    opened = [name for kind, name in events if kind == "open"]
    assert opened == list("abcbcacab")
    # each run's iterator is closed before the next contender's opens
    assert events == [(kind, name) for name in opened for kind in ("open", "close")]
    with pytest.raises(ValueError, match="repeats"):
        interleaved_rates(contenders, 4, 0)


def test_micro_benchmarks_run_once(tmp_path):
    """The pytest-benchmark suite (outside CI's test paths) still runs: one pass, timing disabled."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(root / "benchmarks" / "micro"),
            "-q",
            "--benchmark-disable",
            "-p",
            "no:cacheprovider",
            "-k",
            "Invert or Rotate",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "4 passed" in done.stdout


def test_gpu_suite_without_a_gpu_says_so_in_one_line_and_exits_0(tmp_path):
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the suite would run for minutes")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.sh"
    done = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin"} | _python_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["gpu_suite: no CUDA GPU here (torch sees none); nothing run"]
    assert list(tmp_path.iterdir()) == []


def _python_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME", "VIRTUAL_ENV")}


@pytest.mark.slow
def test_profile_step_smoke(tmp_path):
    pytest.importorskip("nvidia.dali")
    import profile_step

    out = tmp_path / "profile.json"
    profile_step.main(
        [
            *("--device", "cpu", "--N", "4", "--M", "2", "--size", "48", "--model", "small_cnn", "--images", "16"),
            *("--steps", "2", "--warmup", "1", "--top", "5", "--out", str(out)),
        ]
    )
    result = json.loads(out.read_text())
    assert {"command", "date", "machine", "versions", "settings"} <= set(result)
    numbers = result["results"]
    assert numbers["loader_next_ms"] > 0 and numbers["train_step_ms"] > 0 and 0 < numbers["loader_share"] < 1
    assert len(numbers["top_ops"]) == 5 and all(row["calls"] > 0 for row in numbers["top_ops"])


@pytest.mark.parametrize(
    "machine, loaded",
    [
        ({"load_average_at_start": [0.8, 1.0, 1.4], "load_average": [1.9, 1.9, 1.8]}, False),  # its own threads
        ({"load_average_at_start": [3.5, 3.0, 2.0], "load_average": [4.9, 4.0, 3.0]}, True),
        ({"load_average": [1.9, 1.9, 1.8]}, False),  # an older record: only the end figure
        ({"load_average": [9.3, 10.4, 11.8]}, True),
    ],
)
def test_a_machine_is_called_loaded_by_what_ran_beside_the_bench(machine, loaded):
    from fastpolicy.bench import report

    record = {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "gpu": None} | machine,
        "settings": {"batch": 32, "workers": 2, "threads": 2, "repeats": 3, "warmup": 2},
        "date": "2026-11-29T22:46:04",
        "command": "fastpolicy bench --device cpu",
    }
    header = report.describe_machine(record)
    assert ("a loaded machine" in header) is loaded
    assert ("at the start" in header) is ("load_average_at_start" in machine)


def test_the_drop_in_on_a_batch_tensor_is_timed_beside_torchvision_image_by_image():
    from fastpolicy.bench.transform import batch_calls, run_transform_batches

    rows = run_transform_batches("cpu", 2, ["trivialaugment_wide"], warmup=1, batches=1, repeats=1)
    assert [r["contender"] for r in rows] == [
        "fastpolicy PolicyAugment, one call per batch",
        "torchvision v2, image by image",
    ]
    assert all(r["scenario"] == "transform" and r["images_per_s"] > 0 and r["case"].endswith("cpu batch") for r in rows)
    batch = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    for contender in ("fastpolicy", "torchvision"):
        outs = list(batch_calls(batch, "autoaugment", contender, 2))
        assert len(outs) == 2 and all(o.shape == batch.shape and o.dtype == torch.uint8 for o in outs)
