"""Adversarial AutoAugment's Table 4 on Fashion-MNIST, in the regime where augmentation matters.

**Regime.** A class-balanced subset of the training images (``full``: 1 024) trained long
enough that the baseline overfits (80 epochs), tested on all 10 000 test images. The
study records a *gate*: the baseline's test error minus its (clean) training error must
exceed :data:`GATE_POINTS`, else the record says the study is not in the regime.

**Arms** (the paper's): ``baseline`` (M = 1, standard augmentation — pad 4, crop, flip —
and Table 4's step schedule, × 0.2 at 30/60/80 % of training); ``fixed`` (M copies,
standard augmentation only), ``random`` (M random policies per epoch) and ``adversarial``
(M policies from the controller, updated once per epoch as in the paper), all three with
the cosine schedule. **Paired seeds**: seed k gives every arm the same subset and the same
initial weights, so arms are compared seed by seed.

**Ops on 28×28 grey images.** Geometric ops fill with black (Fashion-MNIST's background;
AutoAugment's grey 128 would draw a frame around every shifted garment), and magnitudes
use a *moderate range*: every value is moved halfway towards its op's identity
(``magnitude_scale`` 0.5: rotations up to 15°, shears 0.15, shifts 23 % of the side ≈ 6 px,
enhance factors 0.55–1.45, Posterize ≥ 6 bits, Solarize ≥ 128). Color is kept in the
space although it is a no-op on grey images (the controller may learn to pick it as one).

**Mechanism** (the paper's Figures 2 and 6): whether the adversary's policies raise the
target's training loss relative to random policies — the mean per-policy training loss
over the run, adversarial minus random, paired by seed — and how the controller's
magnitude distribution (mean bin) moves over training; with the controller's KL divergence
from its start, so a reader sees whether it moved at all.

Every run is an :class:`~fastpolicy.train.adversarial.AdversarialSearch` in
``<out>/<arm>/seed<k>/``; its study row is saved there (``study.json``) when it ends, so an
interrupted study continues where it stopped (a run killed mid-way resumes from its checkpoint).
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import atomic
from ..data import fashion_mnist
from ..log import get as get_logger
from ..train import loop
from ..train.adversarial import MODES, AdversarialConfig, AdversarialSearch
from ..train.data import _array_loaders, balanced_subset
from ..train.plots import _pyplot
from ..train.rundir import continue_or_restart

log = get_logger(__name__)

GATE_POINTS = 3.0
"""The baseline's test − train error (points) above which the study is in the overfitting regime."""

BUDGETS: dict[str, dict] = {
    "full": dict(
        preset="fashion_mnist_long",
        baseline_preset="fashion_mnist_long_step",
        epochs=None,
        train_subset=1024,
        val_subset=None,
        seeds=3,
        batch=64,
        M=8,
        fill=0,
        magnitude_scale=0.5,
        controller_window=None,
    ),
    "smoke": dict(
        preset="fashion_mnist_long",
        baseline_preset="fashion_mnist_long_step",
        epochs=2,
        train_subset=128,
        val_subset=500,
        seeds=2,
        batch=32,
        M=2,
        fill=0,
        magnitude_scale=0.5,
        controller_window=None,
    ),
}
"""``full``: about an hour of a 2-core CPU (4 arms × 3 seeds); ``smoke``: a CI-sized check.
``controller_window`` None is the paper's one update per epoch (any other value is a deviation)."""

DIFFERENCES = (("fixed", "baseline"), ("random", "fixed"), ("adversarial", "random"))
"""Paired differences reported, ``a − b`` in points of test error."""


def bootstrap_ci(values, resamples: int = 10000, seed: int = 0) -> list[float]:
    """95 % percentile bootstrap interval of the mean of ``values`` ([low, high]; NaN for < 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _train_error(search: AdversarialSearch, subset: int, seed: int) -> float:
    """Percent error of the trained model on its own training images, unaugmented."""
    images, labels = fashion_mnist.load("train")
    chosen = balanced_subset(labels, subset, seed)
    train = (images[chosen], labels[chosen])
    _, clean, _, _ = _array_loaders(train, train, min(256, subset), 1, "cpu", seed, search.config.num_threads, None)
    return 100 * (1 - loop.evaluate(search.model, clean, search.device, progress=False)["accuracy"])


def run_arm(out: str, arm: str, seed: int, spec: dict, progress: bool = False, threads: int = 2) -> dict:
    """One arm and seed (its saved row if it finished before; resumed if it was interrupted)."""
    folder = os.path.join(out, arm, f"seed{seed}")
    saved = os.path.join(folder, "study.json")
    if os.path.exists(saved):
        with open(saved, encoding="utf-8") as handle:
            return json.load(handle)
    config = AdversarialConfig(
        out=folder,
        preset=spec["baseline_preset"] if arm == "baseline" else spec["preset"],
        mode=arm,
        seed=seed,
        epochs=spec["epochs"],
        M=spec["M"],
        batch=spec["batch"],
        train_subset=spec["train_subset"],
        val_subset=spec["val_subset"],
        balanced_subset=True,
        fill=spec["fill"],
        magnitude_scale=spec["magnitude_scale"],
        controller_window=spec["controller_window"],
        device="cpu",
        progress=progress,
        num_threads=threads,
    )
    search = AdversarialSearch(config, **continue_or_restart(folder))
    search.run()
    history = search.history
    row = {
        "arm": arm,
        "seed": seed,
        "M": search.preset.M,
        "epochs": search.preset.epochs,
        "schedule": search.preset.schedule,
        "test_error_percent": 100 * (1 - history[-1]["val_accuracy"]),
        "train_error_percent": _train_error(search, spec["train_subset"], seed),
        "train_loss": history[-1]["train_loss"],
        "seconds": sum(r["seconds"] for r in history),
        "policy_loss_by_epoch": [float(np.mean(r["reward"])) for r in history],
    }
    row["mean_policy_loss"] = float(np.mean(row["policy_loss_by_epoch"]))
    if arm == "adversarial":
        row |= {
            "controller_kl_from_start": history[-1]["controller_kl_from_start"],
            "controller_kl_stderr": history[-1]["controller_kl_stderr"],
            "controller_updates": sum(r.get("controller_updates", 0) for r in history),
            "mean_bin_by_epoch": [r["controller_mean_bin"] for r in history],
        }
    atomic.write_json(saved, row)
    return row


def summarize(rows: list[dict]) -> dict:
    """Arm → ``{"mean", "std" (sample), "n", "errors"}`` of the test error in percent."""
    out = {}
    for arm in MODES:
        errors = [r["test_error_percent"] for r in rows if r["arm"] == arm]
        if errors:
            out[arm] = {
                "mean": float(np.mean(errors)),
                "std": float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0,
                "n": len(errors),
                "errors": errors,
            }
    return out


def _paired(rows: list[dict], a: str, b: str, key: str) -> list[float]:
    by = {(r["arm"], r["seed"]): r[key] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    return [by[(a, s)] - by[(b, s)] for s in seeds if (a, s) in by and (b, s) in by]


def analyse(rows: list[dict]) -> dict:
    """The record's ``summary``, ``differences``, ``gate`` and ``mechanism`` from the runs."""
    differences = {}
    for a, b in DIFFERENCES:
        d = _paired(rows, a, b, "test_error_percent")
        differences[f"{a}-{b}"] = {
            "mean": float(np.mean(d)) if d else float("nan"),
            "ci95": bootstrap_ci(d),
            "n": len(d),
            "per_seed": d,
        }
    baseline = [r for r in rows if r["arm"] == "baseline"]
    gap = (
        float(np.mean([r["test_error_percent"] - r["train_error_percent"] for r in baseline]))
        if baseline
        else float("nan")
    )
    gate = {
        "baseline_gap_percent": gap,
        "threshold_percent": GATE_POINTS,
        "passed": bool(gap > GATE_POINTS),
        "reading": (
            f"in the regime: the baseline's test error exceeds its training error by {gap:.1f} points"
            if gap > GATE_POINTS
            else f"NOT in the regime: the baseline's generalization gap is {gap:.1f} points "
            f"(≤ {GATE_POINTS}); augmentation has little to close here"
        ),
    }
    loss_gap = _paired(rows, "adversarial", "random", "mean_policy_loss")
    adversarial = [r for r in rows if r["arm"] == "adversarial"]
    mechanism = {
        "adversarial_minus_random_train_loss": {
            "mean": float(np.mean(loss_gap)) if loss_gap else float("nan"),
            "ci95": bootstrap_ci(loss_gap),
            "n": len(loss_gap),
            "per_seed": loss_gap,
        },
        "controller_kl_from_start": [r["controller_kl_from_start"] for r in adversarial],
        "controller_mean_bin_first_last": [
            [r["mean_bin_by_epoch"][0], r["mean_bin_by_epoch"][-1]] for r in adversarial
        ],
    }
    return {"summary": summarize(rows), "differences": differences, "gate": gate, "mechanism": mechanism}


def table(record: dict) -> str:
    """Markdown: per-arm errors, paired differences, gate and mechanism."""
    lines = ["| arm | test error % (mean ± std) | seeds |", "|---|---|---|"]
    for arm, s in record["summary"].items():
        lines.append(f"| {arm} | {s['mean']:.2f} ± {s['std']:.2f} | {s['n']} |")
    lines += ["", "| paired difference (points) | mean | bootstrap 95 % interval | seeds |", "|---|---|---|---|"]
    for name, d in record["differences"].items():
        lines.append(f"| {name} | {d['mean']:+.2f} | [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] | {d['n']} |")
    gate, mech = record["gate"], record["mechanism"]
    loss = mech["adversarial_minus_random_train_loss"]
    kl = mech["controller_kl_from_start"]
    lines += [
        "",
        f"Gate: {gate['reading']}.",
        "",
        f"Mechanism: adversarial − random mean per-policy training loss {loss['mean']:+.4f} "
        f"(bootstrap 95 % [{loss['ci95'][0]:+.4f}, {loss['ci95'][1]:+.4f}], {loss['n']} seeds); "
        f"controller KL from its start: {', '.join(f'{v:.4f}' for v in kl)} nats.",
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], record: dict, path: str, title: str) -> str:
    """Three panels: test error per arm (seeds as dots); per-policy training loss over epochs,
    adversarial vs random; the controller's mean magnitude bin over epochs."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    summary = record["summary"]
    arms = list(summary)
    axes[0].bar(
        arms,
        [summary[a]["mean"] for a in arms],
        yerr=[summary[a]["std"] for a in arms],
        capsize=6,
        color=["tab:gray", "tab:blue", "tab:green", "tab:red"][: len(arms)],
        alpha=0.7,
    )
    for i, arm in enumerate(arms):
        axes[0].plot([i] * summary[arm]["n"], summary[arm]["errors"], "k.", markersize=8)
    errors = [e for s in summary.values() for e in s["errors"]]
    axes[0].set_ylim(max(0, min(errors) - 1.5), max(errors) + 1.0)
    axes[0].set_ylabel("test error % (bars: mean ± std; dots: seeds)")
    axes[0].set_title(title, fontsize=10)
    for arm, colour in (("random", "tab:green"), ("adversarial", "tab:red")):
        curves = [r["policy_loss_by_epoch"] for r in rows if r["arm"] == arm]
        if curves:
            axes[1].plot(np.mean(curves, axis=0), color=colour, label=f"{arm} (mean of {len(curves)} seeds)")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("mean per-policy training loss")
    axes[1].set_title("Is the adversary harder than random policies?", fontsize=10)
    axes[1].legend()
    for r in rows:
        if r["arm"] == "adversarial":
            axes[2].plot(r["mean_bin_by_epoch"], label=f"seed {r['seed']}")
    axes[2].axhline(4.5, color="grey", linestyle=":", label="uniform (4.5)")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("controller's mean magnitude bin (0–9)")
    axes[2].set_title("Magnitudes the controller samples", fontsize=10)
    axes[2].legend(fontsize=8)
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def run_table4(
    out: str,
    budget: str = "full",
    results: str | None = None,
    seeds: int | None = None,
    progress: bool = False,
    threads: int = 2,
) -> dict:
    """Every arm × seed of ``budget`` (seed-major, so a stopped study has whole seeds); writes
    ``table4[_smoke].json`` / ``.md`` / ``.png`` to ``results`` (default ``out``); returns the record."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    spec: dict = BUDGETS[budget] | ({} if seeds is None else {"seeds": seeds})
    rows = []
    for seed in range(spec["seeds"]):
        for arm in MODES:
            rows.append(run_arm(out, arm, seed, spec, progress, threads))
            log.info(
                f"table4 {budget}: {arm} seed {seed}: test error {rows[-1]['test_error_percent']:.2f}%  "
                f"train error {rows[-1]['train_error_percent']:.2f}%  ({rows[-1]['seconds']:.0f} s)"
            )
    record = {
        "study": "adversarial_autoaugment_table4",
        "budget": budget,
        "settings": spec
        | {
            "model": "small_cnn",
            "dataset": "Fashion-MNIST: class-balanced train subset (seeded), test split for the error",
            "gate_points": GATE_POINTS,
        },
        "runs": rows,
    } | analyse(rows)
    results = results or out
    name = "table4" if budget == "full" else f"table4_{budget}"
    atomic.write_json(os.path.join(results, f"{name}.json"), record)
    atomic.write_text(os.path.join(results, f"{name}.md"), table(record))
    epochs = rows[0]["epochs"]
    plot(
        rows,
        record,
        os.path.join(results, f"{name}.png"),
        f"Table 4 on Fashion-MNIST ({spec['train_subset']} images, {epochs} epochs, M={spec['M']})",
    )
    log.info(table(record))
    return record


__all__ = [
    "BUDGETS",
    "DIFFERENCES",
    "GATE_POINTS",
    "analyse",
    "bootstrap_ci",
    "plot",
    "run_arm",
    "run_table4",
    "summarize",
    "table",
]
