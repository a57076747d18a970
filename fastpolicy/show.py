"""``fastpolicy show RUN_DIR``: what a run is, how far it got, what it found, where its files are.

Works for adversarial searches (any Table 4 mode), AWS searches and final trainings,
finished or not: it reads the run's ``run.json`` (kind and settings), its CSV logs
(progress), ``summary.json`` (finished runs), ``schedule.json`` / ``policy.json`` (what it
found), and lists its plots and files. It never loads a checkpoint.
"""

from __future__ import annotations

import csv
import json
import os

from .errors import UserError
from .train.rundir import kind_of

_DESCRIBED = (
    "run.json",
    "summary.json",
    "metrics.csv",
    "stage1.csv",
    "schedule.json",
    "policy.json",
    "split.json",
    "checkpoint.pt",
    "stage1.pt",
    "shared.pt",
    "distributions.npz",
)


def _json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _rows(path: str) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def _kind(folder: str, marker: dict) -> str:
    kind = marker.get("fastpolicy_run")
    if isinstance(kind, str):
        return kind_of(kind)  # "adversarial-<mode>" in runs written before the kind was one word
    if any(os.path.exists(os.path.join(folder, f)) for f in ("shared.pt", "stage1.pt", "stage1.csv")):
        return "aws"
    return "adversarial" if os.path.exists(os.path.join(folder, "schedule.json")) else "train"


def _float(row: dict, key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def describe(folder: str) -> list[str]:
    """The lines ``fastpolicy show`` prints for the run in ``folder``."""
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: no such run folder")
    marker, summary = _json(os.path.join(folder, "run.json")), _json(os.path.join(folder, "summary.json"))
    if not marker and not summary and not os.path.exists(os.path.join(folder, "metrics.csv")):
        raise UserError(f"{folder}: not a fastpolicy run (no run.json, summary.json or metrics.csv)")
    kind = _kind(folder, marker)
    settings = marker.get("settings") or summary.get("config") or {}
    lines = [
        f"run       {os.path.abspath(folder)}",
        f"kind      {kind}" + (f" (started {marker['started']})" if "started" in marker else ""),
        f"status    {'finished' if summary else 'not finished (resume with --resume --out ' + folder + ')'}",
    ]
    data = settings.get("data") or "Fashion-MNIST (embedded default)"
    shown = {
        k: settings[k]
        for k in (
            "preset",
            "model",
            "mode",
            "epochs",
            "M",
            "batch",
            "train_subset",
            "seed",
            "policy",
            "loops",
            "stage1_epochs",
            "finetune_epochs",
            "parameterization",
            "fill",
            "magnitude_scale",
            "controller_window",
        )
        if settings.get(k) is not None
    }
    lines.append(f"data      {data}")
    lines.append("settings  " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    preset = summary.get("preset") or {}
    if kind == "aws":
        stage1, loops = _rows(os.path.join(folder, "stage1.csv")), _rows(os.path.join(folder, "metrics.csv"))
        planned = (summary.get("stages") or {}).get("loops") or settings.get("loops")
        lines.append(
            f"progress  stage 1: {len(stage1)} epoch(s); stage 2: {len(loops)} loop(s)"
            + (f" of {planned}" if planned else "")
        )
        if loops:
            last = loops[-1]
            lines.append(
                f"latest    loop {last.get('loop')}: reward {_fmt(_float(last, 'reward'))}, baseline "
                f"{_fmt(_float(last, 'baseline'))}, entropy {_fmt(_float(last, 'entropy'))}"
            )
        policy = os.path.join(folder, "policy.json")
        if os.path.exists(policy):
            from .distribution import AWSDistribution

            try:
                top = AWSDistribution.load(policy).top_pairs(5)
                lines.append("top pairs " + "; ".join(f"{a}+{b} ({p:.3g})" for a, b, p in top))
            except (ValueError, OSError) as error:
                lines.append(f"top pairs unreadable policy.json: {error}")
    else:
        rows = _rows(os.path.join(folder, "metrics.csv"))
        planned = preset.get("epochs") or settings.get("epochs")
        lines.append(f"progress  {len(rows)} epoch(s)" + (f" of {planned}" if planned else ""))
        if rows:
            last = rows[-1]
            accuracy = _float(last, "val_accuracy")
            lines.append(
                f"latest    epoch {last.get('epoch')}: train loss {_fmt(_float(last, 'train_loss'))}, held-out "
                f"accuracy {_fmt(accuracy)}"
                + (f" (error {100 * (1 - accuracy):.2f} %)" if accuracy is not None else "")
            )
            if "controller_kl_from_start" in last:
                lines.append(
                    f"controller KL from its start {_fmt(_float(last, 'controller_kl_from_start'))} nats, "
                    f"entropy {_fmt(_float(last, 'controller_entropy'))}"
                )
            rewards = sorted(
                (
                    (float(v), k.split("/")[1])
                    for k, v in last.items()
                    if k.startswith("reward/") and v not in ("", None)
                ),
                reverse=True,
            )
            schedule = _json(os.path.join(folder, "schedule.json")).get("epochs") or []
            if rewards and schedule and kind == "adversarial":
                policies = schedule[-1].get("policies", [])
                best = int(rewards[0][1])
                if best < len(policies):
                    subs = policies[best].get("sub_policies", [])
                    text = "; ".join(" → ".join(f"{c.get('op')}@{c.get('bin')}" for c in sub) for sub in subs)
                    lines.append(f"hardest   last epoch's policy {best} (loss {rewards[0][0]:.4f}): {text}")
    files = sorted(f for f in os.listdir(folder) if f.endswith((".png", ".json", ".csv", ".npz", ".pt")))
    lines.append("plots     " + (", ".join(os.path.join(folder, f) for f in files if f.endswith(".png")) or "none yet"))
    lines.append(
        "files     "
        + ", ".join(f for f in files if not f.endswith(".png"))
        + (", tensorboard/" if os.path.isdir(os.path.join(folder, "tensorboard")) else "")
    )
    return lines


__all__ = ["describe"]
