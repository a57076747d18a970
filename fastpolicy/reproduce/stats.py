"""The studies' statistics, in one place: paired differences across seeds, correlations across
policies, and their intervals (SciPy's own tests and bootstrap, not hand-written ones).

* :func:`paired` — per-seed differences ``a − b``: mean, sample sd, a **paired t 95 % interval**
  (the primary figure) and an **exact sign-flip p-value** (two-sided; all 2^n sign patterns of
  the differences, so it is exact for the handful of seeds a study has);
* :func:`bootstrap_ci` — a percentile bootstrap interval of any statistic of one or more
  paired samples (resampled together), e.g. a correlation over policies;
* :func:`pearson`, :func:`spearman`, :func:`reliability` — correlations over policies.

Values are plain floats and lists (JSON-ready); NaN where the sample is too small (n < 2).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

NAN2 = [float("nan"), float("nan")]


def t_interval(differences, confidence: float = 0.95) -> list[float]:
    """``[low, high]``: the t interval of the mean of ``differences`` (float sequence; NaN for n < 2)."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return list(NAN2)
    mean, sem = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    if sem == 0:
        return [mean, mean]
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * sem
    return [mean - half, mean + half]


def sign_flip_p(differences) -> float:
    """Exact two-sided sign-flip (paired permutation) p-value of mean ``differences`` ≠ 0: the
    share of the 2^n sign patterns whose |mean| is at least the observed one (NaN for n < 1)."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 1:
        return float("nan")
    if not np.any(d):
        return 1.0
    result = stats.permutation_test(
        (d,), np.mean, permutation_type="samples", alternative="two-sided", n_resamples=np.inf
    )
    return float(result.pvalue)


def paired(a, b) -> dict:
    """Paired differences of two equally long per-seed sequences ``a`` and ``b`` (same units).

    Returns ``{"mean", "sd", "n", "per_seed", "t_ci95": [low, high], "sign_p"}``; the interval
    is the primary figure, the sign-flip p-value its exact, distribution-free companion."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be two 1-D sequences of one length, got {a.shape} and {b.shape}")
    d = a - b
    return {
        "mean": float(d.mean()) if len(d) else float("nan"),
        "sd": float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
        "n": len(d),
        "per_seed": d.tolist(),
        "t_ci95": t_interval(d),
        "sign_p": sign_flip_p(d),
    }


def bootstrap_ci(statistic, *samples, resamples: int = 10000, seed: int = 0) -> list[float]:
    """95 % percentile bootstrap interval of ``statistic(*samples)``, the samples (equally long
    1-D sequences) resampled together, pair by pair. NaN when n < 3 or the statistic is undefined
    on every resample (e.g. a correlation of constants)."""
    from scipy import stats

    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    if len({len(x) for x in arrays}) != 1:
        raise ValueError(f"bootstrap samples must be equally long, got lengths {[len(x) for x in arrays]}")
    if len(arrays[0]) < 3:
        return list(NAN2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples give NaN statistics, dropped below
        result = stats.bootstrap(
            arrays,
            statistic,
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        values = np.asarray(result.bootstrap_distribution, dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return list(NAN2)
        low, high = float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
    return [low, high]


def pearson(x, y) -> float:
    """Pearson's r of two equally long sequences (NaN when either is constant)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties share their mean rank; NaN when either is constant)."""
    from scipy import stats

    return pearson(stats.rankdata(x), stats.rankdata(y))


def spearman_brown(r: float) -> float:
    """The Spearman–Brown reliability of a mean of two halves whose correlation is ``r``:
    2r / (1 + r) (NaN when ``r`` is not finite or is −1)."""
    return float(2 * r / (1 + r)) if np.isfinite(r) and r > -1 else float("nan")


def reliability(seed_a, seed_b) -> float:
    """Spearman–Brown reliability of the mean of two seeds (:func:`spearman_brown` of their Pearson
    correlation across policies; NaN when undefined)."""
    return spearman_brown(pearson(seed_a, seed_b))


def correlation(x, y, resamples: int = 10000, seed: int = 0) -> dict:
    """``{"pearson": {"r", "ci95"}, "spearman": {"r", "ci95"}, "n"}`` over the pairs of ``x`` and
    ``y``, each interval a :func:`bootstrap_ci` over the pairs."""
    return {
        name: {"r": fn(x, y), "ci95": bootstrap_ci(fn, x, y, resamples=resamples, seed=seed)}
        for name, fn in (("pearson", pearson), ("spearman", spearman))
    } | {"n": len(x)}


__all__ = [
    "bootstrap_ci",
    "correlation",
    "paired",
    "pearson",
    "reliability",
    "sign_flip_p",
    "spearman",
    "spearman_brown",
    "t_interval",
]
