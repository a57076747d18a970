"""Adversarial AutoAugment's Table 4 at small scale: four arms, several seeds, one budget.

Arms (:data:`~fastpolicy.train.adversarial.MODES`), all with the same model, epochs, N,
learning-rate schedule and data: ``baseline`` (M = 1, standard augmentation), ``fixed``
(M copies, standard augmentation only), ``random`` (M random policies per epoch) and
``adversarial`` (M policies from the controller). Each run is a full
:class:`~fastpolicy.train.adversarial.AdversarialSearch` in ``<out>/<arm>/seed<k>/``;
the test error is 1 − the final accuracy on Fashion-MNIST's *test* split (the
adversarial search trains on the train split and uses no validation for its reward).
Finished runs are skipped, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import atomic
from ..train.adversarial import MODES, AdversarialConfig, AdversarialSearch
from ..train.plots import _pyplot

BUDGETS = {
    "full": dict(epochs=6, train_subset=4096, val_subset=None, seeds=3),
    "smoke": dict(epochs=1, train_subset=128, val_subset=256, seeds=2),
}
"""``full``: about 45 minutes of a 2-core CPU for 4 arms × 3 seeds; ``smoke``: a CI-sized check."""


def run_arm(out: str, mode: str, seed: int, budget: dict, M: int = 8, batch: int = 64, progress: bool = False,
            threads: int = 2) -> dict:
    """One arm and seed (skipped if its ``summary.json`` exists); returns its summary row."""
    folder = os.path.join(out, mode, f"seed{seed}")
    summary_path = os.path.join(folder, "summary.json")
    if not os.path.exists(summary_path):
        config = AdversarialConfig(out=folder, mode=mode, seed=seed, epochs=budget["epochs"], M=M, batch=batch,
                                   train_subset=budget["train_subset"], val_subset=budget["val_subset"],
                                   progress=progress, num_threads=threads, device="cpu")
        resume = os.path.exists(os.path.join(folder, "checkpoint.pt"))  # an interrupted run continues
        AdversarialSearch(config, resume=resume, overwrite=not resume).run()  # killed before epoch 0: anew
    with open(summary_path) as handle:
        summary = json.load(handle)
    last = summary["epochs"][-1]
    return {"arm": mode, "seed": seed, "test_error_percent": 100 * (1 - last["val_accuracy"]),
            "train_loss": last["train_loss"], "seconds": sum(e["seconds"] for e in summary["epochs"]),
            "M": summary["preset"]["M"]}


def summarize(rows: list[dict]) -> dict:
    """Arm → ``{"mean", "std" (sample, ddof 1), "n", "errors"}`` of the test error in percent."""
    out = {}
    for mode in MODES:
        errors = [r["test_error_percent"] for r in rows if r["arm"] == mode]
        if errors:
            out[mode] = {"mean": float(np.mean(errors)), "std": float(np.std(errors, ddof=1)) if len(errors) > 1
                         else 0.0, "n": len(errors), "errors": errors}
    return out


def table(summary: dict) -> str:
    lines = ["| arm | M | test error % (mean ± std) | seeds |", "|---|---|---|---|"]
    for mode, s in summary.items():
        lines.append(f"| {mode} | {1 if mode == 'baseline' else 'M'} | {s['mean']:.2f} ± {s['std']:.2f} | {s['n']} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: str, title: str) -> str:
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(6, 4), layout="constrained")
    modes = list(summary)
    axis.bar(modes, [summary[m]["mean"] for m in modes], yerr=[summary[m]["std"] for m in modes], capsize=6,
             color=["tab:gray", "tab:blue", "tab:green", "tab:red"][:len(modes)], alpha=0.7)
    for i, mode in enumerate(modes):
        axis.plot([i] * summary[mode]["n"], summary[mode]["errors"], "k.", markersize=8)
    low = min(min(s["errors"]) for s in summary.values())
    high = max(max(s["errors"]) for s in summary.values())
    axis.set_ylim(max(0, low - 1.5), high + 1.0)
    axis.set_ylabel("test error % (bars: mean ± std; dots: seeds)")
    axis.set_title(title)
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def run_ablation(out: str, budget: str = "full", results: str | None = None, M: int = 8, batch: int = 64,
                 progress: bool = False, threads: int = 2) -> dict:
    """Every arm × seed of ``budget``; writes ``ablation_<budget>.json`` / ``.png`` / ``.md`` to
    ``results`` (default ``out``) and returns the record."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    spec = BUDGETS[budget]
    rows = []
    for seed in range(spec["seeds"]):
        for mode in MODES:
            rows.append(run_arm(out, mode, seed, spec, M, batch, progress, threads))
            print(f"ablation {budget}: {mode} seed {seed}: test error {rows[-1]['test_error_percent']:.2f}% "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    summary = summarize(rows)
    results = results or out
    os.makedirs(results, exist_ok=True)
    record = {"study": "adversarial_autoaugment_table4", "budget": budget, "settings": spec | {"M": M, "batch": batch,
              "model": "small_cnn", "dataset": "Fashion-MNIST (train subset; test split for the error)"},
              "runs": rows, "summary": summary}
    atomic.write_json(os.path.join(results, f"ablation_{budget}.json"), record)
    atomic.write_text(os.path.join(results, f"ablation_{budget}.md"), table(summary))
    plot(summary, os.path.join(results, f"ablation_{budget}.png"),
         f"Table 4 on Fashion-MNIST ({spec['epochs']} epochs, {spec['train_subset']} images, M={M})")
    print(table(summary))
    return record


__all__ = ["BUDGETS", "run_arm", "run_ablation", "summarize", "table", "plot"]
