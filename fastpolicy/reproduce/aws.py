"""AWS (Tian et al., NeurIPS 2020) on Fashion-MNIST, in a regime where augmentation helps:
does the proxy rank policies as training from scratch does, and does the search find a
policy worth more than the free ones? (``fastpolicy reproduce aws``; issue 25, item 2.)

**Regime** (:data:`BUDGETS`): the cell the regime sweep chose (:mod:`.regime`; ``full`` reads its
images, epochs and width from ``regime.json`` and refuses to run without a qualifying cell):
class-balanced training images drawn by the seed, one cosine schedule of ``epochs``, M = 1,
batch 64, geometric ops filling with black (``fill`` 0, the background), every policy at its
full range, test accuracy on all 10 000 test images. Runs evaluate only after their last
epoch (``eval_every``).

**Proxy part** (the paper's Table 5). :func:`candidate_policies`: 12 *distinct* AWS
distributions — uniform; identity (Invert, twice); geometric at three strengths and mixed;
shifts at two strengths; mild and strong colour; AutoContrast/Equalize; a harsh one. For
each policy and seed:

* **full**: trained from scratch with the policy (:class:`~fastpolicy.train.final.FinalTraining`);
* **proxy**: AWS's shared weights (:class:`~fastpolicy.train.aws.AWSSearch`) trained with the
  uniform distribution for 90 % of the epochs, then fine-tuned with the policy for the other
  10 % at the paper's constant small learning rate (``finetune_schedule="constant"``: the
  preset's lr × 0.1), accuracy on 5 000 held-out training images; and the same with shared
  weights trained **without** augmentation (Table 5's ablation).

**Search part.** AWS's PPO end to end from a uniform stage 1 for ``loops`` loops on each of
``search_seeds`` (each loop a constant-rate fine-tuning and one PPO update; the KL of the
distribution from uniform is logged per loop). **The search learned** (:func:`search_gate`,
pre-registered) when, for every search seed, its final KL from uniform exceeds the 95th
percentile of the shuffled-reward null (:func:`fastpolicy.search.null.ppo_null`: the same PPO fed the same
rewards, shuffled across the loops) **and** its rewards rise (:func:`rising`). Each found
policy θ* is then trained from scratch against uniform, TrivialAugmentWide and identity with
the same paired seeds (uniform's and identity's trainings are the proxy part's).

**Analysis** (statistics from :mod:`.stats` only). The pre-registered :data:`GATE`; Pearson's
and Spearman's r of proxy vs full accuracy over all policies and over those at or above
identity's mean full accuracy (:func:`at_or_above_identity`), the primary being Spearman over
the latter, and r_AWS − r_none for both methods and both sets, each with a paired bootstrap over
policies (:func:`correlation_difference`); for the search, the paired differences found − each
(:func:`stats.paired <fastpolicy.reproduce.stats.paired>`: t 95 % interval and exact sign-flip
p), in points of test accuracy. :func:`verdicts` puts both parts into words.

**Resumable.** Every unit (a training from scratch, a stage 1 with its fine-tunings, the
search) writes its row (``study.json``) in its folder when it ends; a rerun reuses finished
units and resumes an interrupted one from its checkpoint (fine-tunings: from the per-policy
cache ``proxy.json``).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from .. import atomic
from ..distribution import AWSDistribution
from ..log import get as get_logger
from ..search import null
from ..spaces import aws
from ..train.aws import AWSConfig, AWSSearch
from ..train.final import FinalTraining, TrainConfig
from ..train.plots import _pyplot
from ..train.rundir import continue_or_restart
from . import record as record_
from . import regime, stats, units

log = get_logger(__name__)

GATE = "identity is not the best of the graded policies"
"""The pre-registered gate, read before any comparison: some graded policy's seed-mean full
test accuracy exceeds identity's (strictly). If identity is the best, the study is not in a
regime where augmentation helps, and its correlations say nothing about ranking helpful
policies (the first study's failure: identity 0.843 vs uniform 0.779)."""

IDENTITY, UNIFORM, FOUND, TRIVIAL = "identity", "uniform", "found", "trivialaugment_wide"
SEARCH_BASELINES = (UNIFORM, TRIVIAL, IDENTITY)
"""The policies the found one is compared with (found − each)."""

FINETUNE_FRACTION = 0.1
"""The share of a cell's epochs each fine-tuning takes (stage 1 the rest; the issue's 54 + 6 of 60)."""

BUDGETS: dict[str, dict] = {
    "full": dict(
        cell="regime",
        val_count=5000,
        test_subset=None,
        seeds=3,
        batch=64,
        fill=0,
        loops=100,
        search_seeds=(0, 1),
        policies=None,
        resamples=5000,
        null_draws=null.NULL_DRAWS,
    ),
    "smoke": dict(
        epochs=2,
        train_subset=128,
        width=None,
        val_count=64,
        test_subset=500,
        seeds=2,
        batch=32,
        fill=0,
        loops=2,
        search_seeds=(0, 1),
        policies=(UNIFORM, IDENTITY, "geometric@3"),
        resamples=200,
        null_draws=2,
    ),
}
"""``full``: the regime's cell (``cell="regime"``), 3 paired seeds for every training from scratch,
100 PPO loops on each of 2 search seeds, a 20-draw null per search; ``smoke``: a CI-sized check of
every step. ``epochs`` is the whole schedule of a training from scratch; stage 1 trains
``epochs − finetune_epochs`` (:data:`FINETUNE_FRACTION`). ``test_subset`` None: all 10 000 test
images. ``policies`` None: all of :func:`candidate_policies`. ``resamples``: the bootstrap's draws."""

DEVIATIONS = (
    "a small CNN on a Fashion-MNIST subset, the regime sweep's cell (the paper: CIFAR-10/100 and ImageNet)",
    "PPO loops 100 per search (the paper: 500), two search seeds",
    "every policy at its full magnitude range, TrivialAugmentWide included (AWS's search has no magnitude scale)",
    "stage 1 trains on images drawn from a seeded permutation of the training images not held out (AWSSearch's "
    "split: random, not class-balanced); full trainings use class-balanced subsets",
)
"""How ``full`` departs from the paper, and why (stored in the record's settings)."""


def resolve_budget(budget: str, seeds: int | None = None, regime_record: str | None = None) -> dict:
    """The settings of ``budget`` with the regime's cell filled in where it says ``cell="regime"``
    (:func:`.regime.chosen_cell`), ``finetune_epochs`` from :data:`FINETUNE_FRACTION`; ``seeds`` overrides."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    if seeds is not None and seeds < 2:
        raise ValueError(f"seeds must be at least 2 (paired differences), got {seeds}")
    spec = dict(BUDGETS[budget])
    if spec.pop("cell", None) == "regime":
        spec |= regime.chosen_cell(regime_record)
    spec["magnitude_scale"] = 1.0  # every policy at its full range: AWS's search has no magnitude scale
    spec["finetune_epochs"] = max(1, round(FINETUNE_FRACTION * spec["epochs"]))
    return spec | ({} if seeds is None else {"seeds": seeds})


_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
_GROUPS: dict[str, tuple[str, list[str]]] = {
    IDENTITY: ("identity (Invert, twice)", ["Invert"]),  # its only pair (Invert, Invert) is a no-op
    "geometric@3": ("mild geometric", [f"{op}@3" for op in _GEOMETRIC]),
    "geometric@6": ("medium geometric", [f"{op}@6" for op in _GEOMETRIC]),
    "geometric@9": ("strong geometric", [f"{op}@9" for op in _GEOMETRIC]),
    "geometric": ("geometric, all strengths", [f"{op}@{b}" for op in _GEOMETRIC for b in (3, 6, 9)]),
    "shifts@3": ("small shifts", ["TranslateX@3", "TranslateY@3"]),
    "shifts@9": ("large shifts", ["TranslateX@9", "TranslateY@9"]),
    "colour@3": ("mild colour", ["Contrast@3", "Brightness@3", "Sharpness@3", "AutoContrast", "Equalize"]),
    "colour@9": ("strong colour", ["Contrast@9", "Brightness@9", "Sharpness@9", "Solarize@9", "Posterize@9"]),
    "autocontrast-equalize": ("AutoContrast/Equalize", ["AutoContrast", "Equalize"]),
    "harsh": ("harsh: Invert + large shifts", ["Invert", "TranslateX@9", "TranslateY@9"]),
}


def concentrated(elements: list[str], strength: float = 12.0) -> AWSDistribution:
    """A distribution with nearly all its mass (over 99.9 % at strength 12) on pairs of
    ``elements`` (AWS element names): θ = +strength on them, −strength elsewhere."""
    names = [el.name for el in aws().elements]
    unknown = sorted(set(elements) - set(names))
    if unknown:
        raise ValueError(f"not AWS elements: {', '.join(unknown)}")
    inside = np.isin(names, elements)
    theta = np.where(inside, strength, -strength)
    return AWSDistribution(theta, np.tile(theta, (len(names), 1)))


def candidate_policies() -> list[tuple[str, str, AWSDistribution]]:
    """The 12 graded policies, ``(key, name, distribution)``: uniform first, then :data:`_GROUPS`."""
    return [(UNIFORM, "uniform", AWSDistribution())] + [
        (key, name, concentrated(elements)) for key, (name, elements) in _GROUPS.items()
    ]


# -- units -------------------------------------------------------------------------------


def _json(path: str) -> dict:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    return {}


def _policy_file(out: str, key: str, distribution: AWSDistribution) -> str:
    path = os.path.join(out, "policies", f"{key}.json")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        distribution.save(path)
    return path


def train_full(out: str, key: str, policy: str, seed: int, spec: dict, progress: bool, threads: int) -> dict:
    """One training from scratch with ``policy`` (a policy file or a standard policy's name):
    its row ``{"policy", "seed", "test_accuracy", "seconds", "commit"}`` (saved as ``study.json``; a
    finished unit is read back, an interrupted one resumed from its checkpoint)."""
    folder = os.path.join(out, "full", key, f"seed{seed}")
    row = units.finished_row(folder)
    if row is not None:
        return row
    start = time.time()
    trainer = FinalTraining(
        TrainConfig(
            out=folder,
            preset="fashion_mnist_long",
            policy=policy,
            M=1,
            epochs=spec["epochs"],
            train_subset=spec["train_subset"],
            width=spec["width"],
            balanced_subset=True,
            val_subset=spec["test_subset"],
            batch=spec["batch"],
            fill=spec["fill"],
            eval_every=spec["epochs"],
            seed=seed,
            device="cpu",
            progress=progress,
            num_threads=threads,
        ),
        **continue_or_restart(folder),
    )
    last = trainer.run()
    row = {"policy": key, "seed": seed, "test_accuracy": float(last["val_accuracy"]), "seconds": time.time() - start}
    return units.save_row(folder, row)


def _search(folder: str, seed: int, spec: dict, stage1_augment: str, loops: int, progress: bool, threads: int):
    return AWSSearch(
        AWSConfig(
            out=folder,
            stage1_epochs=spec["epochs"] - spec["finetune_epochs"],
            loops=loops,
            finetune_epochs=spec["finetune_epochs"],
            finetune_schedule="constant",
            train_subset=spec["train_subset"],
            width=spec["width"],
            val_count=spec["val_count"],
            batch=spec["batch"],
            fill=spec["fill"],
            eval_every=spec["epochs"],
            seed=seed,
            device="cpu",
            stage1_augment=stage1_augment,
            progress=progress,
            num_threads=threads,
        ),
        **continue_or_restart(
            folder, "shared.pt" if os.path.exists(os.path.join(folder, "shared.pt")) else "stage1.pt"
        ),
    )


def proxy_scores(out: str, policies, seed: int, spec: dict, stage1_augment: str, progress: bool, threads: int) -> dict:
    """Stage 1 (``stage1_augment``: ``"uniform"`` or ``"none"``) and one constant-rate fine-tuning
    per policy: row ``{"stage1", "seed", "held_out_accuracy": {key: float}, "seconds", "commit"}``
    (each fine-tuning cached in ``proxy.json`` as it ends; the row saved as ``study.json``)."""
    folder = os.path.join(out, f"stage1-{stage1_augment}", f"seed{seed}")
    row = units.finished_row(folder) or {}
    if row and all(key in row["held_out_accuracy"] for key, _, _ in policies):
        return row
    start = time.time()
    search = _search(folder, seed, spec, stage1_augment, 1, progress, threads)
    search.run_stage1()
    cache_path = os.path.join(folder, "proxy.json")
    cache = _json(cache_path)
    for key, _, distribution in policies:
        if key not in cache:
            cache[key] = float(search.finetune(distribution)["reward"])
            atomic.write_json(cache_path, cache)
    row = {
        "stage1": stage1_augment,
        "seed": seed,
        "held_out_accuracy": cache,
        "seconds": time.time() - start + row.get("seconds", 0.0),
    }
    return units.save_row(folder, row)


def run_search(out: str, spec: dict, search_seed: int, progress: bool, threads: int) -> dict:
    """AWS's PPO end to end from a uniform stage 1 with ``search_seed``: row ``{"seed", "loops",
    "policy" (θ*'s file), "kl_from_uniform", "reward", "entropy" (one per loop), "top_pairs",
    "null_kl" (its shuffled-reward null, one per draw), "seconds", "commit"}`` (saved as
    ``study.json``; an interrupted search resumes at its last loop)."""
    folder = os.path.join(out, "search", f"seed{search_seed}")
    row = units.finished_row(folder)
    if row is not None:
        return row
    start = time.time()
    search = _search(folder, search_seed, spec, "uniform", spec["loops"], progress, threads)
    found = search.run()
    history = search.history
    config = search.config
    updated = [r for r in history if "advantage" in r]  # the loops that fed PPO, in order
    if len(search.trajectories) != len(updated) or len({t.shape for t in search.trajectories}) > 1:
        raise ValueError(
            f"{folder}: the search kept {len(search.trajectories)} trajectories for {len(updated)} updating loops "
            "(resumed from a checkpoint written before trajectories were kept, or candidates per loop changed); "
            "its shuffled-reward null cannot be replayed: remove the folder and run the search again"
        )
    started = time.time()
    null_kl = null.ppo_null(
        np.stack(search.trajectories),
        [r["reward"] for r in updated],
        clip=config.clip,
        steps=config.ppo_steps,
        max_kl=config.max_kl,
        lr=search.agent_lr,
        betas=config.agent_betas,
        baseline_weight=config.baseline_weight,
        parameterization=config.parameterization,
        seed=search_seed,
        draws=spec["null_draws"],
    )
    row = {
        "seed": search_seed,
        "loops": len(history),
        "policy": search.path(AWSSearch.POLICY),
        "kl_from_uniform": [float(r["kl_from_uniform"]) for r in history],
        "reward": [float(r["reward"]) for r in history],
        "entropy": [float(r["entropy"]) for r in history],
        "top_pairs": [[a, b, float(p)] for a, b, p in found.top_pairs(10)],
        "null_kl": null_kl,
        "null_seconds": time.time() - started,
        "seconds": time.time() - start,
    }
    return units.save_row(folder, row)


# -- analysis ----------------------------------------------------------------------------


def gate(keys: list[str], full: np.ndarray) -> dict:
    """:data:`GATE` on ``full`` (float [P, S] test accuracies of the graded policies ``keys``)."""
    means = full.mean(axis=1)
    identity = means[keys.index(IDENTITY)]
    best = int(np.argmax(means))
    passed = bool(np.any(means > identity))
    return {
        "rule": GATE,
        "identity_accuracy": float(identity),
        "best_policy": keys[best],
        "best_accuracy": float(means[best]),
        "policies_above_identity": [k for k, m in zip(keys, means, strict=True) if m > identity],
        "passed": passed,
    }


def at_or_above_identity(keys: list[str], full: np.ndarray) -> list[int]:
    """Indices of the policies whose seed-mean full accuracy is ≥ identity's (identity included)."""
    means = full.mean(axis=1)
    return [i for i, m in enumerate(means) if m >= means[keys.index(IDENTITY)]]


def correlation_difference(full, proxy_a, proxy_b, method: str = "spearman", resamples: int = 10000) -> dict:
    """r(proxy_a, full) − r(proxy_b, full) over policies (each a float [P] of seed means), with
    a paired percentile bootstrap over policies (:func:`stats.bootstrap_ci`, ``resamples`` draws)."""
    fn = {"spearman": stats.spearman, "pearson": stats.pearson}[method]

    def difference(f, a, b):
        return fn(a, f) - fn(b, f)

    return {
        "method": method,
        "difference": difference(full, proxy_a, proxy_b),
        "ci95": stats.bootstrap_ci(difference, full, proxy_a, proxy_b, resamples=resamples),
        "n": len(full),
    }


def analyse_proxy(keys: list[str], full: np.ndarray, proxies: dict[str, np.ndarray], resamples: int = 10000) -> dict:
    """``full`` float [P, S] test accuracies; ``proxies``: ``"uniform"``/``"none"`` → float [P, S]
    held-out accuracies. The gate; Pearson and Spearman over all policies and over those at or above
    identity; r_uniform − r_none for both methods on both sets (bootstrap intervals of ``resamples``
    draws); the primary figures (Spearman at or above identity, and its r_AWS − r_none)."""
    subset = at_or_above_identity(keys, full)
    f = full.mean(axis=1)
    means = {variant: p.mean(axis=1) for variant, p in proxies.items()}
    sets = {"all": list(range(len(keys))), "at_or_above_identity": subset}
    out: dict = {
        "gate": gate(keys, full),
        "subset": [keys[i] for i in subset],
        "correlations": {
            variant: {name: stats.correlation(m[idx], f[idx], resamples=resamples) for name, idx in sets.items()}
            for variant, m in means.items()
        },
        "r_aws_minus_r_none": {
            name: {
                method: correlation_difference(f[idx], means["uniform"][idx], means["none"][idx], method, resamples)
                for method in ("spearman", "pearson")
            }
            for name, idx in sets.items()
        },
    }
    out["primary"] = {
        "spearman_at_or_above_identity": out["correlations"]["uniform"]["at_or_above_identity"]["spearman"],
        "r_aws_minus_r_none": out["r_aws_minus_r_none"]["at_or_above_identity"]["spearman"],
    }
    return out


RISING_P = 0.05
"""The one-sided p-value Spearman's r of reward against loop must stay below (pre-registered)."""


def rising(rewards) -> dict:
    """Whether a search's rewards (float [T], by loop) rise: Spearman's r of reward against loop is
    positive with a one-sided p < :data:`RISING_P` (SciPy's ``spearmanr``; a trend, not noise) AND
    the mean of the last quarter of the loops > the mean of the first quarter (pre-registered).
    Returns ``{"spearman", "p_one_sided", "first_quarter", "last_quarter", "rising"}``."""
    from scipy import stats as scipy_stats

    r = np.asarray(rewards, dtype=np.float64)
    r = r[np.isfinite(r)]
    nan = float("nan")
    if len(r) < 3 or np.ptp(r) == 0:
        return {"spearman": nan, "p_one_sided": nan, "first_quarter": nan, "last_quarter": nan, "rising": False}
    quarter = max(1, round(len(r) / 4))
    rho = stats.spearman(np.arange(len(r)), r)
    p = float(scipy_stats.spearmanr(np.arange(len(r)), r, alternative="greater").pvalue)
    first, last = float(r[:quarter].mean()), float(r[-quarter:].mean())
    return {
        "spearman": rho,
        "p_one_sided": p,
        "first_quarter": first,
        "last_quarter": last,
        "rising": bool(np.isfinite(rho) and rho > 0 and p < RISING_P and last > first),
    }


SEARCH_GATE = (
    "the search learned: in every search seed, the final KL from uniform exceeds the 95th percentile of the "
    "shuffled-reward null and the rewards rise (Spearman's r over the loops > 0 with one-sided p < 0.05, and the "
    "last quarter's mean above the first quarter's)"
)
"""The pre-registered gate of the search part (:func:`search_gate`)."""


def search_gate(searches: list[dict]) -> dict:
    """:data:`SEARCH_GATE` on the search rows (each with ``kl_from_uniform``, ``reward``, ``null_kl``)."""
    per_seed = []
    for row in searches:
        kl = row["kl_from_uniform"][-1] if row["kl_from_uniform"] else float("nan")
        trend = rising(row["reward"])
        above = null.exceeds_null(kl, row.get("null_kl", []))
        per_seed.append(
            {
                "seed": row["seed"],
                "kl_from_uniform": kl,
                "null_p95": null.percentile(row.get("null_kl", [])),
                "null_draws": len(row.get("null_kl", [])),
                "above_null": above,
                "reward_trend": trend,
                "learned": above and trend["rising"],
            }
        )
    return {"rule": SEARCH_GATE, "per_seed": per_seed, "passed": bool(per_seed) and all(p["learned"] for p in per_seed)}


def analyse_search(accuracy: dict[str, list[float]], found: list[str]) -> dict:
    """``accuracy``: policy key → test accuracies by seed (paired); ``found``: the found policies'
    keys. ``f − each`` of :data:`SEARCH_BASELINES` for every ``f`` of ``found``, in points (:func:`stats.paired`)."""
    points = {k: 100 * np.asarray(v, dtype=np.float64) for k, v in accuracy.items()}
    return {f"{f}-{b}": stats.paired(points[f], points[b]) for f in found for b in SEARCH_BASELINES}


def verdicts(record: dict) -> dict:
    """The words the numbers allow for both parts: ``proxy`` (the gate, then the primary Spearman's
    interval) and ``search`` (the search gate, then every found − TrivialAugmentWide interval)."""
    if not record["gate"]["passed"]:
        proxy = "inconclusive: the gate failed (identity is the best policy)"
    else:
        s = record["proxy"]["primary"]["spearman_at_or_above_identity"]
        low, high = s["ci95"]
        if not (np.isfinite(low) and np.isfinite(high)):
            proxy = "inconclusive: too few policies at or above identity for an interval"
        elif low > 0:
            proxy = "reproduced: the proxy ranks the helpful policies as full training does"
        elif high < 0:
            proxy = "reversed: the proxy ranks the helpful policies against full training"
        else:
            proxy = "not different at this power (the primary Spearman's interval includes 0)"
    if not record["search"]["gate"]["passed"]:
        search = "inconclusive: the search gate failed (the search did not learn)"
    else:
        words = []
        for name, d in record["search"]["differences"].items():
            if not name.endswith(f"-{TRIVIAL}"):
                continue
            low, high = d["t_ci95"]
            words.append(
                f"{name}: " + ("better" if low > 0 else "worse" if high < 0 else "not different at this power")
            )
        search = "; ".join(words)
    return {"proxy": proxy, "search": search}


# -- outputs -----------------------------------------------------------------------------


def _ci(v: dict) -> str:
    return f"{v['r']:.2f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}]"


def table(record: dict) -> str:
    """Markdown of every statistic the record holds: per-policy accuracies by seed, the gates, both
    correlations on both sets, r_AWS − r_none for both, the searches and the found policies' differences."""
    lines = [
        "| policy | full test accuracy (seeds) | proxy, uniform stage 1 (seeds) | proxy, no-aug. stage 1 (seeds) |",
        "|---|---|---|---|",
    ]
    for p in record["policies"]:
        by = {
            key: ", ".join(f"{a:.4f}" for a in p[key])
            for key in ("full_by_seed", "proxy_uniform_by_seed", "proxy_none_by_seed")
        }
        lines.append(
            f"| {p['name']} | {p['full']:.4f} ({by['full_by_seed']}) | {p['proxy_uniform']:.4f} "
            f"({by['proxy_uniform_by_seed']}) | {p['proxy_none']:.4f} ({by['proxy_none_by_seed']}) |"
        )
    g, proxy = record["gate"], record["proxy"]
    lines += [
        "",
        f"Gate ({g['rule']}): **{'PASSED' if g['passed'] else 'FAILED'}** — identity {g['identity_accuracy']:.4f}, "
        f"best {g['best_policy']} {g['best_accuracy']:.4f}; policies above identity: "
        f"{', '.join(g['policies_above_identity']) or 'none'}.",
        "",
        "| proxy (stage 1) | policies | Pearson r [95 % bootstrap] | Spearman r [95 % bootstrap] |",
        "|---|---|---|---|",
    ]
    for variant, c in proxy["correlations"].items():
        for subset, v in c.items():
            lines.append(
                f"| {variant} | {subset.replace('_', ' ')} ({v['n']}) | {_ci(v['pearson'])} | {_ci(v['spearman'])} |"
            )
    lines += ["", "| r_AWS − r_none | policies | difference [95 % paired bootstrap] |", "|---|---|---|"]
    for subset, methods in proxy["r_aws_minus_r_none"].items():
        for method, d in methods.items():
            lines.append(
                f"| {method} | {subset.replace('_', ' ')} ({d['n']}) | {d['difference']:+.2f} "
                f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] |"
            )
    search = record["search"]
    lines += [
        "",
        f"Search gate ({search['gate']['rule']}): **{'PASSED' if search['gate']['passed'] else 'FAILED'}**.",
        "",
        "| search seed | loops | final KL from uniform (nats) | null 95th percentile (draws) | above the null "
        "| reward Spearman over loops | first → last quarter reward | learned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, run in zip(search["gate"]["per_seed"], search["runs"], strict=True):
        t = p["reward_trend"]
        lines.append(
            f"| {p['seed']} | {run['loops']} | {p['kl_from_uniform']:.3f} | {p['null_p95']:.3f} ({p['null_draws']}) | "
            f"{'yes' if p['above_null'] else 'no'} | {t['spearman']:+.2f} (p {t['p_one_sided']:.3f}) | "
            f"{t['first_quarter']:.4f} → "
            f"{t['last_quarter']:.4f} | {'yes' if p['learned'] else 'no'} |"
        )
    lines += [
        "",
        "| found − (points of test accuracy) | mean | sd | paired t 95 % | sign-flip p | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in search["differences"].items():
        per = ", ".join(f"{x:+.2f}" for x in v["per_seed"])
        lines.append(
            f"| {name} | {v['mean']:+.2f} | {v['sd']:.2f} | [{v['t_ci95'][0]:+.2f}, {v['t_ci95'][1]:+.2f}] | "
            f"{v['sign_p']:.3f} | {per} |"
        )
    words = record["verdicts"]
    lines += ["", f"**Verdict, proxy:** {words['proxy']}.", f"**Verdict, search:** {words['search']}."]
    lines += ["", f"Commit(s) of the runs: {units.describe_commits(record['commits'])}."]
    return "\n".join(lines) + "\n"


def plot(record: dict, path: str) -> str:
    """Three panels: proxy vs full accuracy per policy (both stage 1s); each search's KL from
    uniform per loop beside its null's 95th percentile; test accuracy of the found policies,
    uniform, TrivialAugmentWide and identity (seeds as dots)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), layout="constrained")
    policies = record["policies"]
    full = [p["full"] for p in policies]
    for key, marker, label in (("proxy_uniform", "o", "uniform stage 1"), ("proxy_none", "x", "no-aug. stage 1")):
        axes[0].scatter([p[key] for p in policies], full, marker=marker, label=label)
    for p in policies:
        axes[0].annotate(p["key"], (p["proxy_uniform"], p["full"]), fontsize=7)
    axes[0].axhline(record["gate"]["identity_accuracy"], color="grey", linestyle=":", label="identity (full)")
    axes[0].set_xlabel("proxy: held-out accuracy after the fine-tuning (seed mean)")
    axes[0].set_ylabel("full training, test accuracy (seed mean)")
    s = record["proxy"]["primary"]["spearman_at_or_above_identity"]
    axes[0].set_title(f"Spearman at/above identity {_ci(s)}", fontsize=9)
    axes[0].legend(fontsize=7)
    for run, p in zip(record["search"]["runs"], record["search"]["gate"]["per_seed"], strict=True):
        kl = run["kl_from_uniform"]
        (line,) = axes[1].plot(range(1, len(kl) + 1), kl, marker=".", label=f"search seed {run['seed']}")
        axes[1].axhline(p["null_p95"], color=line.get_color(), linestyle=":", label="its null's 95th pct")
    axes[1].set_xlabel("PPO loop")
    axes[1].set_ylabel("KL(distribution ‖ uniform), nats")
    axes[1].set_title("Does the search move more than a shuffled-reward search?", fontsize=9)
    axes[1].legend(fontsize=7)
    arms = record["search"]["accuracy"]
    names = list(arms)
    axes[2].bar(names, [100 * np.mean(arms[n]) for n in names], alpha=0.6)
    for i, n in enumerate(names):
        axes[2].plot([i] * len(arms[n]), [100 * a for a in arms[n]], "k.")
    values = [100 * a for n in names for a in arms[n]]
    axes[2].set_ylim(min(values) - 1.0, max(values) + 0.5)
    axes[2].set_ylabel("test accuracy % (bars: mean; dots: seeds)")
    axes[2].set_title("The found policies against free ones (paired seeds)", fontsize=9)
    axes[2].tick_params(axis="x", labelrotation=15)
    atomic.save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def run_aws_study(
    out: str,
    budget: str = "full",
    results: str | None = None,
    seeds: int | None = None,
    progress: bool = False,
    threads: int = 1,
    command: str | None = None,
    regime_record: str | None = None,
) -> dict:
    """The study (see the module docstring), seed-major so a stopped study has whole seeds;
    writes ``aws[_<budget>].json`` / ``.md`` / ``.png`` to ``results`` (default ``out``) and
    returns the record. ``threads``: torch's and each run's DALI CPU threads; ``command``: the
    line recorded (the CLI passes :func:`.record.command`; a Python call records itself);
    ``regime_record``: the regime sweep's JSON (default :data:`.regime.RECORD`), for ``full``."""
    spec = resolve_budget(budget, seeds, regime_record)
    import torch

    torch.set_num_threads(threads)
    start = time.time()
    policies = candidate_policies()
    if spec["policies"] is not None:
        policies = [p for p in policies if p[0] in spec["policies"]]
    keys = [key for key, _, _ in policies]
    files = {key: _policy_file(out, key, distribution) for key, _, distribution in policies}
    seed_range = range(spec["seeds"])
    rows: dict[str, list] = {"full": [], "stage1": []}
    for seed in seed_range:
        for key in keys:
            rows["full"].append(train_full(out, key, files[key], seed, spec, progress, threads))
            log.info(f"aws {budget}: {key} seed {seed}: test accuracy {rows['full'][-1]['test_accuracy']:.4f}")
        for variant in ("uniform", "none"):
            rows["stage1"].append(proxy_scores(out, policies, seed, spec, variant, progress, threads))
    searches = [run_search(out, spec, s, progress, threads) for s in spec["search_seeds"]]
    found = [f"{FOUND}_s{search['seed']}" for search in searches]
    for seed in seed_range:
        for key, policy in (*zip(found, [s["policy"] for s in searches], strict=True), (TRIVIAL, TRIVIAL)):
            rows["full"].append(train_full(out, key, policy, seed, spec, progress, threads))
    by = {(r["policy"], r["seed"]): r["test_accuracy"] for r in rows["full"]}
    full = np.array([[by[(k, s)] for s in seed_range] for k in keys])
    proxies = {
        variant: np.array([[r["held_out_accuracy"][k] for r in rows["stage1"] if r["stage1"] == variant] for k in keys])
        for variant in ("uniform", "none")
    }
    accuracy = {k: [by[(k, s)] for s in seed_range] for k in (*found, *SEARCH_BASELINES)}
    every_row = [*rows["full"], *rows["stage1"], *searches]
    record: dict = record_.header("aws", budget, command or f"python: run_aws_study(budget={budget!r})", threads) | {
        "settings": spec
        | {
            "model": "small_cnn",
            "preset": "fashion_mnist_long (full training), fashion_mnist (AWS search; same lr, batch, cosine)",
            "M": 1,
            "stage1_epochs": spec["epochs"] - spec["finetune_epochs"],
            "finetune_schedule": "constant (the preset's lr × 0.1, the paper's small constant rate)",
            "deviations": list(DEVIATIONS) if budget == "full" else ["smoke: a CI-sized check, not a result"],
        },
        "commits": units.commits(every_row),
        "policies": [
            {
                "key": key,
                "name": name,
                "full": float(full[i].mean()),
                "full_by_seed": full[i].tolist(),
                "proxy_uniform": float(proxies["uniform"][i].mean()),
                "proxy_uniform_by_seed": proxies["uniform"][i].tolist(),
                "proxy_none": float(proxies["none"][i].mean()),
                "proxy_none_by_seed": proxies["none"][i].tolist(),
            }
            for i, (key, name, _) in enumerate(policies)
        ],
    }
    proxy = analyse_proxy(keys, full, proxies, spec["resamples"])
    record["gate"] = proxy.pop("gate")
    record["proxy"] = proxy
    record["search"] = {
        "runs": [{k: v for k, v in s.items() if k != "commit"} for s in searches],
        "gate": search_gate(searches),
        "accuracy": accuracy,
        "differences": analyse_search(accuracy, found),
    }
    record["verdicts"] = verdicts(record)
    record["unit_seconds"] = {
        "full_trainings": sum(r["seconds"] for r in rows["full"]),
        "stage1_and_finetunings": sum(r["seconds"] for r in rows["stage1"]),
        "searches": sum(s["seconds"] for s in searches),
    }
    record["wall_seconds"] = time.time() - start
    name = "aws" if budget == "full" else f"aws_{budget}"
    record_.write(results or out, name, record, table(record), lambda path: plot(record, path))
    log.info(table(record))
    return record


__all__ = [
    "BUDGETS",
    "DEVIATIONS",
    "FINETUNE_FRACTION",
    "GATE",
    "SEARCH_GATE",
    "analyse_proxy",
    "analyse_search",
    "at_or_above_identity",
    "candidate_policies",
    "concentrated",
    "correlation_difference",
    "gate",
    "plot",
    "proxy_scores",
    "resolve_budget",
    "rising",
    "run_aws_study",
    "run_search",
    "search_gate",
    "table",
    "train_full",
    "verdicts",
]
