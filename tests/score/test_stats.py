"""Wilson intervals and McNemar's exact test against published values, and their coverage
and size computed exactly (no simulation)."""

from __future__ import annotations

import itertools
import math

import pytest

from kanoa_desktop.core.score.stats import (
    Z_95,
    format_p,
    mcnemar_exact,
    paired,
    wilson_interval,
)

# Newcombe RG (1998). Two-sided confidence intervals for the single proportion: comparison
# of seven methods. Statistics in Medicine 17:857-872, Table II, method 3 (score interval
# without continuity correction), to the four decimals printed there.
NEWCOMBE_1998 = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), NEWCOMBE_1998)
def test_wilson_interval_matches_newcombe_1998(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 29)[0] == 0.0 and wilson_interval(29, 29)[1] == 1.0
    lo, hi = wilson_interval(29, 29)  # the mirror of 0/29
    assert (lo, hi) == pytest.approx((1 - wilson_interval(0, 29)[1], 1.0))
    assert Z_95 == pytest.approx(1.959963984540054)
    for bad in ((-1, 5), (6, 5), (1, -1)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


def _binom_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def exact_coverage(n: int, p: float) -> float:
    """P(the Wilson 95 % interval of Binomial(n, p) covers p), summed exactly."""
    total = 0.0
    for k in range(n + 1):
        lo, hi = wilson_interval(k, n)
        if lo <= p <= hi:
            total += _binom_pmf(k, n, p)
    return total


def test_wilson_coverage_is_near_95_percent_where_scores_live():
    """Averaged over accuracies 0.05..0.95 the exact coverage is 95 % within a point
    (the interval's known behaviour: it oscillates around its nominal level). A Wald
    interval or a 90 % quantile would fail this."""
    grid = [i / 100 for i in range(5, 96)]
    for n in (16, 64, 200):
        mean_cov = sum(exact_coverage(n, p) for p in grid) / len(grid)
        assert 0.94 <= mean_cov <= 0.96, (n, mean_cov)
    assert min(exact_coverage(64, p) for p in grid) > 0.90


# Fagerland MW, Lydersen S, Laake P (2013). The McNemar test for binary matched-pairs data:
# mid-p and asymptotic are better than exact conditional. BMC Medical Research Methodology
# 13:91. Worked example (airway hyper-responsiveness before and after stem cell
# transplantation): 1 and 7 discordant pairs, exact conditional p = 0.070.
def test_mcnemar_exact_matches_fagerland_2013():
    assert round(mcnemar_exact(1, 7), 3) == 0.070
    assert round(mcnemar_exact(7, 1), 3) == 0.070
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)


def _mcnemar_by_enumeration(b: int, c: int) -> float:
    """Every way the b + c discordant items could fall under "equally accurate": the share
    at least as unbalanced as the one seen."""
    n = b + c
    seen = abs(b - c)
    outcomes = list(itertools.product((0, 1), repeat=n))
    extreme = sum(1 for o in outcomes if abs(2 * sum(o) - n) >= seen)
    return extreme / len(outcomes)


def test_mcnemar_exact_equals_enumerating_every_discordant_outcome():
    for b in range(0, 9):
        for c in range(0, 9):
            if b + c == 0:
                assert mcnemar_exact(b, c) == 1.0
                continue
            assert mcnemar_exact(b, c) == pytest.approx(_mcnemar_by_enumeration(b, c)), (b, c)


def test_mcnemar_exact_is_never_above_its_level_under_the_null():
    """Its size: P(p < 0.05 | equally accurate) <= 0.05 for every number of discordant
    items (the conditional test is conservative, never liberal)."""
    for n in range(1, 80):
        size = sum(math.comb(n, b) for b in range(n + 1) if mcnemar_exact(b, n - b) < 0.05)
        assert size / 2**n <= 0.05, n


def test_paired_says_who_is_better_only_when_the_test_says_so():
    a = {f"i{k}": True for k in range(30)}
    b = {f"i{k}": k < 10 for k in range(30)}
    res = paired("big", "small", a, b)
    assert (res.n, res.both, res.b, res.c) == (30, 10, 20, 0)
    assert res.better == "big" and res.p < 0.001
    assert "big reads these charts better than small" in res.verdict()
    close = paired("x", "y", {"1": True, "2": False, "3": True}, {"1": False, "2": True, "3": True})
    assert close.better == "" and "no significant difference" in close.verdict()
    none = paired("x", "y", {"1": True}, {"2": True})
    assert none.n == 0 and "no item scored by both" in none.verdict()
    assert format_p(0.0004) == "< 0.001" and format_p(0.07031) == "0.070"
