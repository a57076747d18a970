"""AWS's proxy check (Tian et al., Table 5) at small scale: does fine-tuning from shared weights rank
policies as training from scratch does?

For ``n_policies`` fixed AWS distributions (the uniform one, and distributions concentrated
on a few random op pairs, so that the policies differ in strength):

* **proxy**: AWS's stage-1 shared weights (uniform policy, :class:`~fastpolicy.train.aws.AWSSearch`)
  fine-tuned with the policy, accuracy on the search's held-out split — stage 2's reward;
* **full**: a model trained from scratch with the policy (:class:`~fastpolicy.train.final.FinalTraining`),
  accuracy on Fashion-MNIST's test split.

Reports Pearson's and Spearman's r between the two over the policies. Finished runs are
skipped on a rerun.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import atomic
from ..distribution import AWSDistribution
from ..train.aws import AWSConfig, AWSSearch
from ..train.final import FinalTraining, TrainConfig
from ..train.plots import _pyplot

BUDGETS = {
    "full": dict(policies=10, stage1_epochs=4, finetune_epochs=1, full_epochs=4, train_subset=4096, val_count=2048),
    "smoke": dict(policies=3, stage1_epochs=1, finetune_epochs=1, full_epochs=1, train_subset=128, val_count=64),
}


def candidate_policies(n: int, seed: int = 0, pairs: int = 4) -> list[AWSDistribution]:
    """The uniform distribution, then ``n − 1`` distributions each putting ~all mass on ``pairs``
    random (e1, e2) pairs (θ = +8 on them, −8 elsewhere)."""
    rng = np.random.default_rng([seed, 5])
    uniform = AWSDistribution()
    e = uniform.n_elements
    out = [uniform]
    for _ in range(n - 1):
        theta1, theta2 = np.full(e, -8.0), np.full((e, e), -8.0)
        chosen = rng.choice(e * e, size=pairs, replace=False)
        theta1[chosen // e] = 8.0
        theta2[chosen // e, chosen % e] = 8.0
        out.append(AWSDistribution(theta1, theta2))
    return out


def describe(distribution: AWSDistribution, k: int = 4) -> str:
    top = distribution.top_pairs(k)
    if top[0][2] < 2.0 / distribution.n_elements ** 2:
        return "uniform"
    return ", ".join(f"{a}+{b}" for a, b, p in top if p > 0.01)


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


def _continue(folder: str, checkpoint_name: str = "checkpoint.pt") -> dict:
    """A study's run: resumed from its checkpoint, or (killed before its first one) started over."""
    resume = os.path.exists(os.path.join(folder, checkpoint_name))
    return {"resume": resume, "overwrite": not resume}


def run_proxy(out: str, budget: str = "full", results: str | None = None, seed: int = 0, batch: int = 64,
              progress: bool = False, threads: int = 2) -> dict:
    """The study (see the module docstring); writes ``proxy_<budget>.json`` / ``.png`` to ``results``."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    spec = BUDGETS[budget]
    policies = candidate_policies(spec["policies"], seed)
    search = AWSSearch(AWSConfig(out=os.path.join(out, "shared"), stage1_epochs=spec["stage1_epochs"], loops=1,
                                 finetune_epochs=spec["finetune_epochs"], train_subset=spec["train_subset"],
                                 val_count=spec["val_count"], batch=batch, seed=seed, device="cpu",
                                 progress=progress, num_threads=threads),
                       **_continue(os.path.join(out, "shared"), "stage1.pt"))
    search.run_stage1()
    rows = []
    for i, policy in enumerate(policies):
        folder = os.path.join(out, f"policy{i}")
        os.makedirs(folder, exist_ok=True)
        path = policy.save(os.path.join(folder, "policy.json"))
        proxy = search.finetune(policy)["reward"]
        if not os.path.exists(os.path.join(folder, "full", "summary.json")):
            FinalTraining(TrainConfig(out=os.path.join(folder, "full"), policy=str(path), M=1,
                                      epochs=spec["full_epochs"], train_subset=spec["train_subset"],
                                      val_subset=None, batch=batch, seed=seed, device="cpu", progress=progress,
                                      num_threads=threads), **_continue(os.path.join(folder, "full"))).run()
        with open(os.path.join(folder, "full", "summary.json")) as handle:
            full = json.load(handle)["final_accuracy"]
        rows.append({"policy": i, "pairs": describe(policy), "proxy_accuracy": proxy, "full_accuracy": full})
        print(f"proxy {budget}: policy {i} ({rows[-1]['pairs']}): proxy {proxy:.4f}  full {full:.4f}", flush=True)
    proxy_acc = [r["proxy_accuracy"] for r in rows]
    full_acc = [r["full_accuracy"] for r in rows]
    record = {"study": "aws_proxy_table5", "budget": budget, "settings": spec | {"batch": batch, "seed": seed,
              "model": "small_cnn", "finetune_lr": search.finetune_lr},
              "policies": rows, "pearson_r": pearson(proxy_acc, full_acc), "spearman_r": spearman(proxy_acc, full_acc)}
    results = results or out
    os.makedirs(results, exist_ok=True)
    atomic.write_json(os.path.join(results, f"proxy_{budget}.json"), record)
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
    axis.scatter(proxy_acc, full_acc)
    for r in rows:
        axis.annotate(str(r["policy"]), (r["proxy_accuracy"], r["full_accuracy"]), fontsize=8)
    axis.set_xlabel("proxy: fine-tuned shared weights, held-out accuracy")
    axis.set_ylabel("full training from scratch, test accuracy")
    axis.set_title(f"AWS proxy check: Pearson r = {record['pearson_r']:.2f}, Spearman r = {record['spearman_r']:.2f}")
    atomic.save_figure(fig, os.path.join(results, f"proxy_{budget}.png"), dpi=100)
    plt.close(fig)
    print(f"Pearson r = {record['pearson_r']:.3f}, Spearman r = {record['spearman_r']:.3f}")
    return record


__all__ = ["BUDGETS", "candidate_policies", "ranks", "pearson", "spearman", "run_proxy"]
