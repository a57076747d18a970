"""The studies' statistics helper (fastpolicy/reproduce/stats.py) against independent computations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fastpolicy.reproduce import stats

scipy_stats = pytest.importorskip("scipy.stats")


def test_paired_t_interval_and_sign_test_on_the_issue_example():
    """Issue 25's recomputation of Table 4: adversarial − random per seed gives [+0.03, +0.88], p = 0.25."""
    d = stats.paired([16.29, 17.10, 16.78], [16.03, 16.58, 16.20])
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.4533, abs=1e-4)
    assert d["t_ci95"] == pytest.approx([0.0308, 0.8759], abs=1e-3)
    assert d["sign_p"] == pytest.approx(0.25)
    assert d["per_seed"] == pytest.approx([0.26, 0.52, 0.58])


@pytest.mark.parametrize("d", [[1.0, -2.0, 3.0, 0.5, 2.5], [0.3, 0.1, -0.2, 0.4], [-1.0, -1.0, -1.0]])
def test_sign_flip_p_is_the_exact_enumeration(d):
    observed = abs(np.mean(d))
    flips = [abs(np.mean(np.multiply(d, signs))) for signs in itertools.product((1, -1), repeat=len(d))]
    expected = np.mean([f >= observed - 1e-12 for f in flips])
    assert stats.sign_flip_p(d) == pytest.approx(expected)


def test_t_interval_matches_scipy_and_degenerate_cases():
    d = np.array([0.4, -0.1, 0.9, 0.3, 0.2])
    low, high = scipy_stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=scipy_stats.sem(d))
    assert stats.t_interval(d) == pytest.approx([low, high])
    assert all(np.isnan(stats.t_interval([1.0])))
    assert stats.t_interval([2.0, 2.0, 2.0]) == [2.0, 2.0]
    assert stats.sign_flip_p([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match="one length"):
        stats.paired([1, 2, 3], [1, 2])


def test_correlations_match_scipy_and_constants_give_nan():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = x + rng.normal(size=12)
    y[3] = y[4]  # a tie
    assert stats.pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y)[0])
    assert stats.spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y)[0])
    assert np.isnan(stats.pearson([1, 1, 1], [1, 2, 3])) and np.isnan(stats.spearman([1, 2, 3], [5, 5, 5]))


def test_bootstrap_interval_brackets_the_statistic_and_is_reproducible():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    y = 0.7 * x + rng.normal(scale=0.5, size=30)
    low, high = stats.bootstrap_ci(stats.pearson, x, y)
    assert low < stats.pearson(x, y) < high and low >= -1 and high <= 1
    assert stats.bootstrap_ci(stats.pearson, x, y) == [low, high]  # seeded
    mean_low, mean_high = stats.bootstrap_ci(np.mean, x)
    assert mean_low < x.mean() < mean_high
    assert all(np.isnan(stats.bootstrap_ci(np.mean, [1.0, 2.0])))
    assert all(np.isnan(stats.bootstrap_ci(stats.pearson, [1.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])))
    with pytest.raises(ValueError, match="equally long"):
        stats.bootstrap_ci(stats.pearson, [1.0, 2.0, 3.0], [1.0, 2.0])
    result = stats.correlation(x, y)
    assert result["n"] == 30 and set(result) == {"pearson", "spearman", "n"}


def test_spearman_brown_and_reliability():
    from fastpolicy.reproduce import stats as s

    assert s.spearman_brown(0.5) == pytest.approx(2 / 3) and s.spearman_brown(0.0) == 0.0
    assert s.spearman_brown(1.0) == 1.0 and np.isnan(s.spearman_brown(-1.0)) and np.isnan(s.spearman_brown(np.nan))
    a = [1.0, 2.0, 3.0, 4.0]
    assert s.reliability(a, [1.0, 3.0, 2.0, 4.0]) == pytest.approx(2 * 0.8 / 1.8)  # Pearson 0.8
    assert np.isnan(s.reliability(a, [1.0, 1.0, 1.0, 1.0]))  # a constant seed: undefined
