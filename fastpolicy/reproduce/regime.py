"""Where does augmentation pay on Fashion-MNIST? The pre-registered regime sweep run before either
study (``fastpolicy reproduce regime``; issue 35, item 2).

**Cells** (:data:`CELLS`): training images ∈ {512, 1 024} × epochs ∈ {80, 160}, the small CNN at
width 32; :data:`WIDER_CELLS` (width 64) run only if no cell of :data:`CELLS` qualifies. Every run:
a class-balanced subset drawn by the seed, M = 1, batch 64, the cosine schedule, geometric ops
filling with black (Fashion-MNIST's background), test error on all 10 000 test images after the
last epoch, and the clean training error (the same images, no augmentation).

**Arms** (:data:`ARMS`): ``baseline`` (standard augmentation only), ``trivialaugment``
(TrivialAugmentWide at its full range) and ``trivialaugment_half`` (its magnitudes moved halfway
to identity, ``magnitude_scale`` 0.5); :data:`SEEDS` paired seeds per cell.

Cells run cheapest first (:func:`cost`) and the sweep stops at the first that qualifies
(:data:`STOP_AT_FIRST`).

**The rule** (:data:`RULE`, fixed before any run was read; :func:`qualifies`): a cell qualifies
when the baseline over-fits — its mean test − train error gap is ≥ 5 points — *and*
TrivialAugmentWide (full range) is ≥ 1 point of test error better than the baseline in every
seed. The studies run in the cheapest qualifying cell (:func:`choose`; cost: :func:`cost`), at
the magnitude scale of whichever TrivialAugmentWide arm has the lower mean test error there
(:func:`study_magnitude_scale`). If no cell qualifies the record says so and names no cell.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UserError
from ..log import get as get_logger
from ..train.final import FinalTraining, TrainConfig
from ..train.plots import _pyplot
from ..train.rundir import continue_or_restart
from . import record as record_
from . import units

log = get_logger(__name__)


@dataclass(frozen=True)
class Cell:
    """One regime: ``images`` class-balanced training images, ``epochs``, the small CNN's ``width``."""

    images: int
    epochs: int
    width: int = 32

    @property
    def key(self) -> str:
        """``"512x80w32"``: the cell's folder and its name in the record."""
        return f"{self.images}x{self.epochs}w{self.width}"


CELLS = (Cell(512, 80), Cell(512, 160), Cell(1024, 80), Cell(1024, 160))
"""The issue's cells, width 32 (the small CNN's default)."""
WIDER_CELLS = tuple(Cell(c.images, c.epochs, 64) for c in CELLS)
"""Run only when no cell of :data:`CELLS` qualifies (the issue's "add width 64 cells")."""

ARMS = {
    "baseline": (None, 1.0),
    "trivialaugment": ("trivialaugment_wide", 1.0),
    "trivialaugment_half": ("trivialaugment_wide", 0.5),
}
"""Arm → (standard policy or None, magnitude scale)."""

SEEDS = 2
"""Paired seeds per cell (seed k: the same subset, initial weights and batch order in every arm)."""

STOP_AT_FIRST = True
"""Cells run cheapest first and the sweep stops at the first that qualifies: no costlier cell could
be chosen, so the choice is the same as a whole sweep's (the rest are not run; the record lists the
cells that ran)."""

RULE = {"min_overfit_points": 5.0, "min_gain_points": 1.0}
"""The pre-registered rule: the baseline's mean test − train error gap ≥ ``min_overfit_points``
AND baseline − TrivialAugmentWide test error ≥ ``min_gain_points`` in every seed (points of error)."""

BUDGETS: dict[str, dict] = {
    "full": dict(cells=CELLS, wider=WIDER_CELLS, seeds=SEEDS, batch=64, fill=0, test_subset=None),
    "smoke": dict(cells=(Cell(128, 2, 8), Cell(128, 3, 8)), wider=(), seeds=2, batch=32, fill=0, test_subset=300),
}
"""``full``: the sweep of the issue (≈ 30 min on both cores of this CPU); ``smoke``: seconds, CI-sized."""


RECORD = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "benchmarks",
    "results",
    "reproduce",
    "regime.json",
)
"""The committed sweep the studies' ``full`` budgets read their cell from."""


def chosen_cell(path: str | None = None) -> dict:
    """The studies' cell from the regime record ``path`` (default :data:`RECORD`): ``{"epochs",
    "train_subset", "width", "magnitude_scale", "regime_cell", "regime_commit"}``. UserError naming
    the file when it is missing, unreadable or names no qualifying cell (the studies never run in a
    cell that failed the rule)."""
    import json

    path = path or RECORD
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        raise UserError(
            f"{path}: no regime record; run 'fastpolicy reproduce regime --results {os.path.dirname(path)}' first"
        ) from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable regime record ({error})") from None
    chosen = record.get("chosen") if isinstance(record, dict) else None
    cells = {c.get("cell"): c for c in record.get("cells", [])} if isinstance(record, dict) else {}
    if chosen is None or chosen not in cells or not cells[chosen].get("rule", {}).get("passed"):
        raise UserError(f"{path}: no cell qualified in the regime sweep, so the studies do not run; widen the sweep")
    cell = cells[chosen]
    return {
        "epochs": cell["epochs"],
        "train_subset": cell["images"],
        "width": cell["width"],
        "magnitude_scale": record["magnitude_scale"],
        "regime_cell": chosen,
        "regime_commit": (record.get("git") or {}).get("commit"),
    }


def cost(cell: Cell) -> float:
    """A cell's training cost in width-32 image-epochs: images × epochs × (width / 32)² (a
    convolution's work grows with the square of its width). Ties keep :data:`CELLS`' order."""
    return cell.images * cell.epochs * (cell.width / 32) ** 2


def qualifies(baseline_test, baseline_train, trivialaugment_test) -> dict:
    """The rule (:data:`RULE`) on one cell's per-seed percent errors (equally long float sequences,
    paired by seed): ``{"overfit_points", "gains", "overfits", "helps", "passed"}``."""
    base, train, ta = (np.asarray(x, dtype=np.float64) for x in (baseline_test, baseline_train, trivialaugment_test))
    if not (base.shape == train.shape == ta.shape) or base.ndim != 1 or len(base) == 0:
        raise ValueError(f"need equally long per-seed errors, got {base.shape}, {train.shape}, {ta.shape}")
    gap = float(np.mean(base - train))
    gains = (base - ta).tolist()
    overfits = gap >= RULE["min_overfit_points"]
    helps = all(g >= RULE["min_gain_points"] for g in gains)
    return {"overfit_points": gap, "gains": gains, "overfits": overfits, "helps": helps, "passed": overfits and helps}


def choose(results: list[dict]) -> dict | None:
    """The cheapest cell (by ``cost``, ties in list order) of ``results`` (each with ``cost`` and
    ``rule``) whose rule passed, or None."""
    passed = [r for r in results if r["rule"]["passed"]]
    return min(passed, key=lambda r: r["cost"]) if passed else None


def study_magnitude_scale(cell_result: dict) -> float:
    """The studies' magnitude scale: that of the TrivialAugmentWide arm (full or half range) with
    the lower mean test error in the chosen cell (full range on a tie)."""
    arms = cell_result["arms"]
    full, half = arms["trivialaugment"]["test_mean"], arms["trivialaugment_half"]["test_mean"]
    return ARMS["trivialaugment_half"][1] if half < full else ARMS["trivialaugment"][1]


def run_unit(out: str, cell: Cell, arm: str, seed: int, spec: dict, progress: bool, threads: int) -> dict:
    """One arm × seed of ``cell``: its saved row, or the training (resumed if interrupted) and its row."""
    folder = os.path.join(out, cell.key, arm, f"seed{seed}")
    row = units.finished_row(folder)
    if row is not None:
        return row
    policy, scale = ARMS[arm]
    trainer = FinalTraining(
        TrainConfig(
            out=folder,
            preset="fashion_mnist_long",
            policy=policy,
            M=1,
            epochs=cell.epochs,
            train_subset=cell.images,
            balanced_subset=True,
            val_subset=spec["test_subset"],
            batch=spec["batch"],
            fill=spec["fill"],
            magnitude_scale=scale,
            width=cell.width,
            eval_every=cell.epochs,
            seed=seed,
            device="cpu",
            progress=progress,
            num_threads=threads,
        ),
        **continue_or_restart(folder),
    )
    start = time.time()
    last = trainer.run()
    row = {
        "cell": cell.key,
        **asdict(cell),
        "arm": arm,
        "seed": seed,
        "policy": policy,
        "magnitude_scale": scale,
        "test_error_percent": 100 * (1 - float(last["val_accuracy"])),
        "train_error_percent": units.train_error(trainer.model, trainer.device, cell.images, seed, threads),
        "seconds": time.time() - start,
    }
    return units.save_row(folder, row)


def analyse_cell(cell: Cell, rows: list[dict]) -> dict:
    """One cell's summary: per arm the per-seed test and train errors and their means, the rule."""
    arms = {}
    for arm in ARMS:
        mine = sorted((r for r in rows if r["cell"] == cell.key and r["arm"] == arm), key=lambda r: r["seed"])
        arms[arm] = {
            "test": [r["test_error_percent"] for r in mine],
            "train": [r["train_error_percent"] for r in mine],
            "test_mean": float(np.mean([r["test_error_percent"] for r in mine])),
            "train_mean": float(np.mean([r["train_error_percent"] for r in mine])),
        }
    return {
        "cell": cell.key,
        **asdict(cell),
        "cost": cost(cell),
        "arms": arms,
        "rule": qualifies(arms["baseline"]["test"], arms["baseline"]["train"], arms["trivialaugment"]["test"]),
    }


def table(record: dict) -> str:
    """Markdown: the rule, every cell's errors per arm and seed, its verdict, and the choice."""
    lines = [
        f"**Rule** (pre-registered): {record['rule_text']}.",
        "",
        "| cell (images × epochs, width) | cost | arm | test error % per seed | mean | train error % per seed | mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in record["cells"]:
        for arm, a in c["arms"].items():
            lines.append(
                f"| {c['images']} × {c['epochs']}, w{c['width']} | {c['cost']:.0f} | {arm} | "
                + ", ".join(f"{x:.2f}" for x in a["test"])
                + f" | {a['test_mean']:.2f} | "
                + ", ".join(f"{x:.2f}" for x in a["train"])
                + f" | {a['train_mean']:.2f} |"
            )
    lines += [
        "",
        "| cell | baseline test − train (points) | baseline − TrivialAugmentWide per seed | over-fits | helps "
        "| qualifies |",
        "|---|---|---|---|---|---|",
    ]
    for c in record["cells"]:
        rule = c["rule"]
        lines.append(
            f"| {c['cell']} | {rule['overfit_points']:+.2f} | {', '.join(f'{g:+.2f}' for g in rule['gains'])} | "
            f"{'yes' if rule['overfits'] else 'no'} | {'yes' if rule['helps'] else 'no'} | "
            f"**{'yes' if rule['passed'] else 'no'}** |"
        )
    lines += ["", f"**Verdict:** {record['verdict']}."]
    if record["chosen"] is not None:
        lines.append(f"Magnitude scale for every policy arm of the studies: {record['magnitude_scale']:g}.")
    lines += [
        "",
        f"Runs: {len(record['runs'])}, {record['train_seconds_total'] / 60:.1f} min of training; "
        f"commit(s) of the runs {units.describe_commits(record['commits'])}; the record written on "
        f"{units.describe_commits([record['git']])}.",
    ]
    return "\n".join(lines) + "\n"


def plot(record: dict, path: str) -> str:
    """Two panels: test error per cell and arm (seeds as dots); the baseline's train and test error."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
    cells = record["cells"]
    width = 0.8 / len(ARMS)
    for j, arm in enumerate(ARMS):
        xs = np.arange(len(cells)) + (j - (len(ARMS) - 1) / 2) * width
        axes[0].bar(xs, [c["arms"][arm]["test_mean"] for c in cells], width, alpha=0.6, label=arm)
        for x, c in zip(xs, cells, strict=True):
            axes[0].plot([x] * len(c["arms"][arm]["test"]), c["arms"][arm]["test"], "k.", markersize=5)
    labels = [c["cell"] + (" ✓" if c["rule"]["passed"] else "") for c in cells]
    axes[0].set_xticks(np.arange(len(cells)), labels, rotation=15)
    values = [x for c in cells for a in c["arms"].values() for x in a["test"]]
    axes[0].set_ylim(max(0.0, min(values) - 2), max(values) + 1)
    axes[0].set_ylabel("test error % (bars: mean; dots: seeds)")
    axes[0].set_title("Does TrivialAugmentWide beat the baseline? (✓: the cell qualifies)", fontsize=9)
    axes[0].legend(fontsize=7)
    positions = np.arange(len(cells))
    axes[1].plot(positions, [c["arms"]["baseline"]["train_mean"] for c in cells], "o-", label="baseline train error")
    axes[1].plot(positions, [c["arms"]["baseline"]["test_mean"] for c in cells], "s-", label="baseline test error")
    axes[1].set_xticks(positions, [c["cell"] for c in cells], rotation=15)
    axes[1].set_ylabel("error %")
    axes[1].set_title(f"Does the baseline over-fit? (gap ≥ {RULE['min_overfit_points']:g} points)", fontsize=9)
    axes[1].legend(fontsize=7)
    from .. import atomic

    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def rule_text() -> str:
    return (
        f"the cheapest cell where the baseline's mean test − train error gap is ≥ {RULE['min_overfit_points']:g} "
        f"points and TrivialAugmentWide (full range) is ≥ {RULE['min_gain_points']:g} point better than the "
        "baseline in every seed; cells run cheapest first and the sweep stops at the first that qualifies; "
        "width-64 cells only if no width-32 cell qualifies"
    )


def run_regime_study(
    out: str,
    budget: str = "full",
    results: str | None = None,
    seeds: int | None = None,
    progress: bool = False,
    threads: int = 2,
    command: str | None = None,
) -> dict:
    """The sweep (module docstring), cheapest cell first; writes ``regime[_<budget>].json`` / ``.md`` /
    ``.png`` to ``results`` (default ``out``) and returns the record. Resumable: finished runs are reused."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    spec: dict = BUDGETS[budget] | ({} if seeds is None else {"seeds": seeds})
    import torch

    torch.set_num_threads(threads)
    start = time.time()
    rows: list[dict] = []
    results_by_cell: list[dict] = []
    for phase in ("cells", "wider"):
        if phase == "wider" and choose(results_by_cell) is not None:
            break
        for cell in sorted(spec[phase], key=cost):
            if STOP_AT_FIRST and choose(results_by_cell) is not None:
                break
            for seed in range(spec["seeds"]):
                for arm in ARMS:
                    rows.append(run_unit(out, cell, arm, seed, spec, progress, threads))
                    log.info(
                        f"regime {budget}: {cell.key} {arm} seed {seed}: test error "
                        f"{rows[-1]['test_error_percent']:.2f}%, train error {rows[-1]['train_error_percent']:.2f}%"
                    )
            results_by_cell.append(analyse_cell(cell, rows))
    chosen = choose(results_by_cell)
    record = record_.header("regime", budget, command or f"python: run_regime_study(budget={budget!r})", threads) | {
        "wall_seconds_this_invocation": time.time() - start,
        "train_seconds_total": sum(r["seconds"] for r in rows),
        "settings": {k: v for k, v in spec.items() if k not in ("cells", "wider")}
        | {
            "model": "small_cnn",
            "M": 1,
            "preset": "fashion_mnist_long (lr 0.05 at batch 64, cosine, wd 5e-4)",
            "stop_at_first": STOP_AT_FIRST,
            "cells": [asdict(c) for c in spec["cells"]],
            "wider_cells": [asdict(c) for c in spec["wider"]],
            "arms": {arm: {"policy": p, "magnitude_scale": s} for arm, (p, s) in ARMS.items()},
        },
        "rule": RULE,
        "rule_text": rule_text(),
        "commits": units.commits(rows),
        "cells": results_by_cell,
        "chosen": None if chosen is None else chosen["cell"],
        "magnitude_scale": None if chosen is None else study_magnitude_scale(chosen),
        "verdict": (
            f"cell {chosen['cell']} qualifies ({chosen['images']} images, {chosen['epochs']} epochs, width "
            f"{chosen['width']}): the studies run there"
            if chosen is not None
            else "no cell qualifies: the studies must not run in any of these cells; widen the sweep"
        ),
        "runs": rows,
    }
    name = "regime" if budget == "full" else f"regime_{budget}"
    record_.write(results or out, name, record, table(record), lambda path: plot(record, path))
    log.info(table(record))
    return record


__all__ = [
    "ARMS",
    "BUDGETS",
    "CELLS",
    "RECORD",
    "RULE",
    "SEEDS",
    "STOP_AT_FIRST",
    "WIDER_CELLS",
    "Cell",
    "analyse_cell",
    "choose",
    "chosen_cell",
    "cost",
    "qualifies",
    "run_regime_study",
    "study_magnitude_scale",
    "table",
]
