"""Small, dependency-light statistics for comparing objectives: means, win rates, paired tests.

numpy only. The Student t quantile is computed here (regularized incomplete beta by continued fraction, inverted
by bisection) so that llm2 does not need scipy for one number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

EXACT_SIGN_FLIP_MAX_N = 16  # 2**16 sign patterns: exact enumeration is still instant
MONTE_CARLO_DRAWS = 20_000


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of a against b over the same settings (positive mean_diff: a scores higher)."""

    mean_diff: float
    ci_low: float  # t-interval for the mean difference; nan when n < 2
    ci_high: float
    p_value: float  # two-sided sign-flip permutation test
    n: int
    method: str


def _as_array(values: Sequence[float], what: str = "values") -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty sequence of numbers")
    return array


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    array = _as_array(values)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std


def count_wins(a: Sequence[float], b: Sequence[float]) -> float:
    """How many paired settings a beats b in; a tie counts as half a win."""
    x, y = _as_array(a, "a"), _as_array(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired scores need equal lengths, got {x.size} and {y.size}")
    return float(np.sum(x > y) + 0.5 * np.sum(x == y))


def win_rate_ci(wins: float, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Win rate with its Wilson score interval: (rate, low, high). ``wins`` may be fractional (ties as halves)."""
    if n <= 0:
        raise ValueError("a win rate needs at least one comparison")
    if not 0 <= wins <= n:
        raise ValueError(f"wins must lie in [0, n], got {wins} of {n}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    rate = wins / n
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half_width = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n wins the bounds are exactly 0 or 1; rounding would leave them a hair off.
    low = 0.0 if wins == 0 else max(0.0, centre - half_width)
    high = 1.0 if wins == n else min(1.0, centre + half_width)
    return rate, low, high


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (modified Lentz); converges for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    # Use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges fast.
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    tail = 0.5 * regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The t value with P(T <= t) = p for df degrees of freedom (bisection on the CDF)."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if student_t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def sign_flip_p_value(differences: np.ndarray, seed: int = 0,
                      draws: int = MONTE_CARLO_DRAWS) -> tuple[float, str]:
    """Two-sided p-value of 'the mean difference is zero' by flipping the signs of the paired differences.

    Exact enumeration of all 2**n sign patterns for n <= 16, else a seeded Monte Carlo estimate.
    """
    n = differences.size
    observed = abs(differences.sum())
    tolerance = 1e-12 * max(1.0, float(np.abs(differences).sum()))
    if n <= EXACT_SIGN_FLIP_MAX_N:
        patterns = np.arange(2 ** n)[:, None] >> np.arange(n)[None, :] & 1
        signs = 1 - 2 * patterns
        extreme = np.abs(signs @ differences) >= observed - tolerance
        return float(extreme.mean()), f"exact sign-flip permutation test ({2 ** n} sign patterns)"
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(draws, n))
    extreme = int(np.sum(np.abs(signs @ differences) >= observed - tolerance))
    # (count + 1) / (draws + 1): the observed pattern counts as one draw, so p is never 0.
    return (extreme + 1) / (draws + 1), f"Monte Carlo sign-flip permutation test ({draws} draws, seed {seed})"


def paired_test(a: Sequence[float], b: Sequence[float], level: float = 0.95, seed: int = 0) -> PairedTest:
    """Compare paired per-setting scores a and b: mean of a - b, its t-interval, and a sign-flip p-value."""
    x, y = _as_array(a, "a"), _as_array(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired scores need equal lengths, got {x.size} and {y.size}")
    differences = x - y
    n = differences.size
    mean_diff, std = mean_std(differences)
    if n >= 2:
        half_width = student_t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
        ci_low, ci_high = mean_diff - half_width, mean_diff + half_width
    else:
        ci_low = ci_high = math.nan
    p_value, method = sign_flip_p_value(differences, seed=seed)
    return PairedTest(mean_diff, ci_low, ci_high, p_value, n, method + " and Student t interval")
