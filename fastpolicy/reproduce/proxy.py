"""AWS's proxy check (Tian et al., Table 5) at small scale: does fine-tuning shared weights rank
policies as training from scratch does?

**Policies** (:func:`candidate_policies`): 12 AWS distributions graded by strength — the
uniform one; mild and strong geometric; mild and strong colour; Invert twice (its only
pair, so in effect no augmentation: the reference point); harsh (Invert with large
translations); large translations; AutoContrast/Equalize; and three random θ of scale 3.
Each concentrated policy puts nearly all its mass on pairs of its
elements (θ = +12 on them, −12 elsewhere: over 99 % of the mass).

For each policy and seed (:data:`BUDGETS`):

* **full**: a model trained from scratch with the policy for the whole budget
  (:class:`~fastpolicy.train.final.FinalTraining`, a class-balanced training subset drawn by
  the seed), accuracy on all 10 000 test images;
* **proxy**: AWS's shared weights (:class:`~fastpolicy.train.aws.AWSSearch`, uniform policy)
  trained for the first epochs of the *same* cosine schedule, then fine-tuned with the
  policy for its last epochs (``finetune_schedule="tail"``: the paper's point that
  augmentation matters late in training), accuracy on 5 000 held-out training images;
* **proxy, no augmentation in stage 1** (the paper's Table 5 ablation): the same with
  shared weights trained without a policy. (Table 5's "no fine-tuning" variant scores
  every policy with the same shared weights, so it cannot rank them; it is not run.)

**Analysis.** Pearson's and Spearman's r between the seed-mean proxy and full accuracies,
with 95 % bootstrap intervals over policies; each measure's *reliability* (the correlation
of its two seeds across policies, stepped up by Spearman–Brown to the two-seed mean) and
the reliability-corrected r = r / √(rel_full · rel_proxy) (Spearman's correction for
attenuation); and a **screen**: the spread of full accuracy across policies must be at
least :data:`SCREEN_RATIO` × its seed-to-seed spread, else the policies do not differ
enough for any proxy to rank them. Finished runs and fine-tunings are reused on a rerun.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import atomic
from ..distribution import AWSDistribution
from ..log import get as get_logger
from ..spaces import aws
from ..train.aws import AWSConfig, AWSSearch
from ..train.final import FinalTraining, TrainConfig
from ..train.plots import _pyplot
from ..train.rundir import continue_or_restart

log = get_logger(__name__)

SCREEN_RATIO = 3.0
"""Full accuracy's spread across policies must be at least this × its seed-to-seed spread."""

BUDGETS = {
    "full": dict(train_subset=4096, val_count=5000, epochs=15, finetune_epochs=3, seeds=2, batch=64),
    "smoke": dict(train_subset=128, val_count=64, epochs=2, finetune_epochs=1, seeds=2, batch=32),
}
"""``full``: about 25 minutes of a 2-core CPU (12 policies × 2 seeds); ``smoke``: a CI-sized check.
``epochs`` is the whole budget: full training's, and stage 1 + fine-tuning's."""

_GROUPS = {
    "mild geometric": [f"{op}@3" for op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")],
    "strong geometric": [f"{op}@9" for op in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")],
    "mild colour": ["Contrast@3", "Brightness@3", "Sharpness@3", "Color@3", "AutoContrast", "Equalize"],
    "strong colour": ["Contrast@9", "Brightness@9", "Sharpness@9", "Solarize@9", "Posterize@9"],
    "Invert, twice (= identity)": ["Invert"],  # its only pair is (Invert, Invert): no augmentation
    "harsh: Invert + large shifts": ["Invert", "TranslateX@9", "TranslateY@9"],
    "large shifts": ["TranslateX@9", "TranslateY@9"],
    "AutoContrast/Equalize": ["AutoContrast", "Equalize"],
}


def concentrated(elements: list[str], strength: float = 12.0) -> AWSDistribution:
    """A distribution with nearly all its mass on pairs of ``elements`` (AWS element names)."""
    names = [el.name for el in aws().elements]
    unknown = sorted(set(elements) - set(names))
    if unknown:
        raise ValueError(f"not AWS elements: {', '.join(unknown)}")
    inside = np.isin(names, elements)
    theta = np.where(inside, strength, -strength)
    return AWSDistribution(theta, np.tile(theta, (len(names), 1)))


def candidate_policies(
    seed: int = 0, random_policies: int = 3, scale: float = 3.0
) -> list[tuple[str, AWSDistribution]]:
    """``(name, distribution)``: uniform, the graded groups, and ``random_policies`` random θ ~ N(0, scale²)."""
    rng = np.random.default_rng([seed, 5])
    policies = [("uniform", AWSDistribution())] + [(name, concentrated(group)) for name, group in _GROUPS.items()]
    e = AWSDistribution().n_elements
    for i in range(random_policies):
        policies.append(
            (
                f"random θ #{i + 1} (scale {scale:g})",
                AWSDistribution(rng.normal(0, scale, e), rng.normal(0, scale, (e, e))),
            )
        )
    return policies


def ranks(values) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (for Spearman's r)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    out = np.empty(len(values))
    out[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        out[tied] = out[tied].mean()
    return out


def pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x, y) -> float:
    return pearson(ranks(x), ranks(y))


def reliability(seed_a, seed_b) -> float:
    """Spearman–Brown reliability of the mean of two seeds: 2r / (1 + r), r their correlation across policies."""
    r = pearson(seed_a, seed_b)
    return float(2 * r / (1 + r)) if np.isfinite(r) and r > -1 else float("nan")


def correlation(x, y, resamples: int = 10000, seed: int = 0) -> dict:
    """``{"pearson": {"r", "ci95"}, "spearman": {"r", "ci95"}}`` with bootstrap intervals over the pairs."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(x), (resamples, len(x)))
    out = {}
    for name, fn in (("pearson", pearson), ("spearman", spearman)):
        samples = np.array([fn(x[d], y[d]) for d in draws])
        samples = samples[np.isfinite(samples)]
        ci = (
            [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]
            if len(samples)
            else [float("nan")] * 2
        )
        out[name] = {"r": fn(x, y), "ci95": ci}
    return out


def _json(path: str) -> dict:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return {}


def full_accuracy(
    out: str, index: int, policy: AWSDistribution, seed: int, spec: dict, progress: bool, threads: int
) -> float:
    """Test accuracy of a model trained from scratch with ``policy`` (reused if it finished)."""
    folder = os.path.join(out, f"policy{index}")
    run = os.path.join(folder, f"full-seed{seed}")
    summary = _json(os.path.join(run, "summary.json"))
    if "final_accuracy" not in summary:
        path = os.path.join(folder, "policy.json")
        if not os.path.exists(path):
            policy.save(path)
        FinalTraining(
            TrainConfig(
                out=run,
                policy=path,
                M=1,
                epochs=spec["epochs"],
                train_subset=spec["train_subset"],
                balanced_subset=True,
                val_subset=None,
                batch=spec["batch"],
                seed=seed,
                device="cpu",
                progress=progress,
                num_threads=threads,
            ),
            **continue_or_restart(run),
        ).run()
        summary = _json(os.path.join(run, "summary.json"))
    return float(summary["final_accuracy"])


def proxy_accuracies(
    out: str, policies, seed: int, spec: dict, stage1_augment: str, progress: bool, threads: int
) -> list[float]:
    """Held-out accuracy of the shared weights fine-tuned with each policy (cached per policy)."""
    folder = os.path.join(out, f"shared-{stage1_augment}-seed{seed}")
    search = AWSSearch(
        AWSConfig(
            out=folder,
            stage1_epochs=spec["epochs"] - spec["finetune_epochs"],
            loops=1,
            finetune_epochs=spec["finetune_epochs"],
            train_subset=spec["train_subset"],
            val_count=spec["val_count"],
            batch=spec["batch"],
            seed=seed,
            device="cpu",
            finetune_schedule="tail",
            stage1_augment=stage1_augment,
            progress=progress,
            num_threads=threads,
        ),
        **continue_or_restart(
            folder, "shared.pt" if os.path.exists(os.path.join(folder, "shared.pt")) else "stage1.pt"
        ),
    )
    search.run_stage1()
    cache_path = os.path.join(folder, "proxy.json")
    cache = _json(cache_path)
    for name, policy in policies:
        if name not in cache:
            cache[name] = search.finetune(policy)["reward"]
            atomic.write_json(cache_path, cache)
    return [float(cache[name]) for name, _ in policies]


def screen(full: np.ndarray) -> dict:
    """``full``: float [policies, seeds]. Spread across policies (std of the seed means) vs
    seed-to-seed spread (pooled within-policy std), and whether the ratio reaches :data:`SCREEN_RATIO`."""
    across = float(np.std(full.mean(axis=1), ddof=1))
    within = float(np.sqrt(np.mean(np.var(full, axis=1, ddof=1)))) if full.shape[1] > 1 else float("nan")
    ratio = across / within if within > 0 else float("inf")
    return {
        "policy_spread": across,
        "seed_spread": within,
        "ratio": ratio,
        "threshold": SCREEN_RATIO,
        "passed": bool(ratio >= SCREEN_RATIO),
    }


def analyse(names: list[str], full: np.ndarray, proxies: dict[str, np.ndarray]) -> dict:
    """The record's statistics: ``full`` float [P, S], ``proxies`` variant → float [P, S]."""
    record = {"n_policies": len(names), "seeds": int(full.shape[1]), "screen": screen(full)}
    rel_full = reliability(full[:, 0], full[:, 1]) if full.shape[1] > 1 else float("nan")
    variants = {}
    for variant, proxy in proxies.items():
        stats = correlation(proxy.mean(axis=1), full.mean(axis=1))
        rel_proxy = reliability(proxy[:, 0], proxy[:, 1]) if proxy.shape[1] > 1 else float("nan")
        product = rel_full * rel_proxy
        corrected = float(np.clip(stats["pearson"]["r"] / np.sqrt(product), -1, 1)) if product > 0 else float("nan")
        variants[variant] = stats | {"reliability_proxy": rel_proxy, "pearson_corrected": corrected}
    main = variants["uniform stage 1"]
    record |= {
        "pearson": main["pearson"],
        "spearman": main["spearman"],
        "reliability_full": rel_full,
        "reliability_proxy": main["reliability_proxy"],
        "pearson_corrected": main["pearson_corrected"],
        "variants": variants,
    }
    return record


def plot(rows: list[dict], record: dict, path: str) -> str:
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7, 5.5), layout="constrained")
    full = [r["full_accuracy"] for r in rows]
    for key, marker, label in (
        ("proxy_accuracy", "o", "uniform stage 1"),
        ("proxy_no_aug_accuracy", "x", "no augmentation in stage 1"),
    ):
        axis.scatter([r[key] for r in rows], full, marker=marker, label=label)
    for r in rows:
        axis.annotate(str(r["policy"]), (r["proxy_accuracy"], r["full_accuracy"]), fontsize=8)
    axis.set_xlabel("proxy: shared weights fine-tuned at the schedule's end, held-out accuracy (seed mean)")
    axis.set_ylabel("full training from scratch, test accuracy (seed mean)")
    p, s = record["pearson"], record["spearman"]
    axis.set_title(
        f"AWS proxy check, {record['n_policies']} policies: Pearson {p['r']:.2f} "
        f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}], Spearman {s['r']:.2f} "
        f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]",
        fontsize=9,
    )
    axis.legend(fontsize=8)
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def table(rows: list[dict], record: dict) -> str:
    lines = [
        "| # | policy | full test accuracy | proxy (uniform stage 1) | proxy (no aug. stage 1) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['name']} | {r['full_accuracy']:.4f} | {r['proxy_accuracy']:.4f} | "
            f"{r['proxy_no_aug_accuracy']:.4f} |"
        )
    lines.append("")
    for variant, v in record["variants"].items():
        lines.append(
            f"- {variant}: Pearson {v['pearson']['r']:.2f} [{v['pearson']['ci95'][0]:.2f}, "
            f"{v['pearson']['ci95'][1]:.2f}], Spearman {v['spearman']['r']:.2f} "
            f"[{v['spearman']['ci95'][0]:.2f}, {v['spearman']['ci95'][1]:.2f}], reliability-corrected "
            f"Pearson {v['pearson_corrected']:.2f}"
        )
    sc = record["screen"]
    lines.append(
        f"- screen: full accuracy spread across policies {100 * sc['policy_spread']:.2f} points vs "
        f"{100 * sc['seed_spread']:.2f} between seeds (ratio {sc['ratio']:.1f}; "
        f"{'passed' if sc['passed'] else 'NOT passed'}, threshold {sc['threshold']:g}); reliability of "
        f"full {record['reliability_full']:.2f}, of the proxy {record['reliability_proxy']:.2f}"
    )
    return "\n".join(lines) + "\n"


def run_proxy(
    out: str, budget: str = "full", results: str | None = None, progress: bool = False, threads: int = 2
) -> dict:
    """The study (see the module docstring); writes ``proxy[_smoke].json`` / ``.md`` / ``.png`` to ``results``."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    spec = BUDGETS[budget]
    policies = candidate_policies()
    if budget == "smoke":
        policies = policies[:1] + policies[5:7]  # uniform, Invert twice, harsh
    seeds = range(spec["seeds"])
    full = np.array(
        [
            [full_accuracy(out, i, policy, seed, spec, progress, threads) for seed in seeds]
            for i, (_, policy) in enumerate(policies)
        ]
    )
    proxies = {
        "uniform stage 1": np.array(
            [proxy_accuracies(out, policies, seed, spec, "uniform", progress, threads) for seed in seeds]
        ).T,
        "no augmentation in stage 1": np.array(
            [proxy_accuracies(out, policies, seed, spec, "none", progress, threads) for seed in seeds]
        ).T,
    }
    rows = [
        {
            "policy": i,
            "name": name,
            "full_accuracy": float(full[i].mean()),
            "full_by_seed": full[i].tolist(),
            "proxy_accuracy": float(proxies["uniform stage 1"][i].mean()),
            "proxy_by_seed": proxies["uniform stage 1"][i].tolist(),
            "proxy_no_aug_accuracy": float(proxies["no augmentation in stage 1"][i].mean()),
        }
        for i, (name, _) in enumerate(policies)
    ]
    record = {
        "study": "aws_proxy_table5",
        "budget": budget,
        "settings": spec
        | {
            "model": "small_cnn",
            "finetune_schedule": "tail",
            "full": "FinalTraining, class-balanced subset, test split",
            "proxy": "AWS shared weights, held-out training images",
        },
        "policies": rows,
    } | analyse([name for name, _ in policies], full, proxies)
    results = results or out
    name = "proxy" if budget == "full" else f"proxy_{budget}"
    atomic.write_json(os.path.join(results, f"{name}.json"), record)
    atomic.write_text(os.path.join(results, f"{name}.md"), table(rows, record))
    plot(rows, record, os.path.join(results, f"{name}.png"))
    log.info(table(rows, record))
    return record


__all__ = [
    "BUDGETS",
    "SCREEN_RATIO",
    "analyse",
    "candidate_policies",
    "concentrated",
    "correlation",
    "pearson",
    "ranks",
    "reliability",
    "run_proxy",
    "screen",
    "spearman",
]
