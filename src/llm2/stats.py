"""Statistics for comparing objectives: means, the sign-flip test, and evidence whose unit is the setting.

Distributions and tests come from ``scipy.stats``. Written here is only what scipy has no function for: the
hierarchical bootstrap (resample settings, then seeds within each setting) and the bookkeeping that turns per-seed
differences into evidence over settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

EXACT_SIGN_FLIP_MAX_N = 16  # 2**16 sign patterns: exact enumeration is still instant
MONTE_CARLO_DRAWS = 20_000
BOOTSTRAP_DRAWS = 4_000
SIGNIFICANCE = 0.05


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


def sign_flip_p_value(differences: Sequence[float], seed: int = 0,
                      draws: int = MONTE_CARLO_DRAWS) -> tuple[float, str]:
    """Two-sided p-value of 'the mean difference is zero' by flipping the signs of the paired differences
    (``scipy.stats.permutation_test``): every one of the 2**n sign patterns for n <= 16, else seeded draws."""
    d = _as_array(differences, "differences")
    if not np.any(d) or d.size == 1:  # no sign pattern can be more extreme than the observed one
        return 1.0, f"exact sign-flip permutation test ({2 ** d.size} sign patterns)"
    exact = d.size <= EXACT_SIGN_FLIP_MAX_N
    result = stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                                    n_resamples=np.inf if exact else draws, alternative="two-sided",
                                    rng=np.random.default_rng(seed))
    if exact:
        return float(result.pvalue), f"exact sign-flip permutation test ({2 ** d.size} sign patterns)"
    return float(result.pvalue), f"Monte Carlo sign-flip permutation test ({draws} draws, seed {seed})"


def smallest_sign_flip_p(settings: int) -> float:
    """The smallest two-sided p an exact sign-flip test over ``settings`` units can ever give: all signs alike."""
    return 2.0 / 2 ** settings if settings else 1.0


def settings_needed(alpha: float = SIGNIFICANCE) -> int:
    """The fewest units with which an exact sign-flip test can reach p < alpha."""
    return next(n for n in range(1, 64) if smallest_sign_flip_p(n) < alpha)


@dataclass(frozen=True)
class SettingsEvidence:
    """Candidate minus reference with the setting as the unit of evidence; seeds only measure noise within one."""

    settings: int  # settings where both sides have values
    seeds: int  # seeds per setting (the fewest of any setting)
    deterministic: bool  # every seed of every setting gave the same values: the seeds are not counted
    wins: int  # settings whose mean difference is above zero
    losses: int
    setting_means: tuple[float, ...]  # per setting: the mean over seeds of candidate minus reference
    setting_errors: tuple[float, ...]  # per setting: its standard error over seeds (0 when deterministic)
    mean_diff: float  # mean over settings of the setting means
    ci_low: float  # hierarchical bootstrap interval of mean_diff (settings, then seeds within them)
    ci_high: float
    p_value: float  # exact (or seeded Monte Carlo) sign-flip over the setting means
    can_be_significant: bool  # False: too few settings for the sign-flip test to ever reach p < 0.05
    method: str


def hierarchical_bootstrap(per_setting: Sequence[np.ndarray], level: float = 0.95, seed: int = 0,
                           draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float]:
    """Percentile interval of the mean over settings of the mean over seeds, resampling settings with replacement
    and then, inside every drawn setting, its seeds with replacement (scipy's bootstrap knows one level only)."""
    rng = np.random.default_rng(seed)
    n = len(per_setting)
    seeds = max(len(v) for v in per_setting)
    # Ragged seeds: pad with nan and draw each setting's seeds only among its own.
    table = np.full((n, seeds), np.nan)
    for i, values in enumerate(per_setting):
        table[i, :len(values)] = values
    counts = np.array([len(v) for v in per_setting])
    chosen = rng.integers(0, n, size=(draws, n))
    positions = (rng.random((draws, n, seeds)) * counts[chosen][..., None]).astype(int)
    resampled = table[chosen[..., None], positions]  # draws × settings × seeds
    statistic = resampled.mean(axis=2).mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(statistic, [tail, 1 - tail])
    return float(low), float(high)


def settings_evidence(candidate: Sequence[Sequence[float]], reference: Sequence[Sequence[float]],
                      level: float = 0.95, seed: int = 0) -> SettingsEvidence:
    """Evidence over settings from per-setting, per-seed values of the candidate and the reference (paired by
    position: seed k of a setting against seed k of the same setting)."""
    if len(candidate) != len(reference) or not candidate:
        raise ValueError("settings evidence needs the same, non-zero number of settings on both sides")
    pairs = []
    for mine, theirs in zip(candidate, reference):
        x, y = _as_array(mine, "candidate values"), _as_array(theirs, "reference values")
        if x.shape != y.shape:
            raise ValueError(f"a setting needs as many candidate seeds as reference seeds, got {x.size} and {y.size}")
        pairs.append((x, y))
    seeds = min(x.size for x, _ in pairs)
    deterministic = seeds >= 2 and all(np.ptp(x) == 0 and np.ptp(y) == 0 for x, y in pairs)
    differences = [x - y for x, y in pairs]
    if deterministic:  # identical seeds are one measurement, not several
        differences = [d[:1] for d in differences]
    means = np.array([d.mean() for d in differences])
    errors = tuple(float(d.std(ddof=1) / math.sqrt(d.size)) if d.size > 1 else 0.0 for d in differences)
    p_value, method = sign_flip_p_value(means, seed=seed)
    low, high = hierarchical_bootstrap(differences, level, seed)
    method = (f"{method.replace('permutation test', 'over settings')}; {level:.0%} hierarchical bootstrap interval "
              f"(settings, then seeds within them; {BOOTSTRAP_DRAWS} draws, seed {seed})")
    return SettingsEvidence(len(pairs), seeds, deterministic, int(np.sum(means > 0)), int(np.sum(means < 0)),
                            tuple(float(m) for m in means), errors, float(means.mean()), low, high, p_value,
                            smallest_sign_flip_p(len(pairs)) < SIGNIFICANCE, method)


def seeds_phrase(evidence: SettingsEvidence) -> str:
    """How many seeds stand behind each setting, in words."""
    if evidence.deterministic:
        return "deterministic: every seed gave the same values, so seeds are not counted"
    return "1 seed each" if evidence.seeds == 1 else f"{evidence.seeds} seeds each"


def significant_direction(evidence: SettingsEvidence, alpha: float = SIGNIFICANCE) -> str | None:
    """"higher" or "lower" when the sign-flip over settings is significant and the interval excludes zero."""
    if not evidence.can_be_significant or not evidence.p_value < alpha:
        return None
    if evidence.ci_low > 0 and evidence.mean_diff > 0:
        return "higher"
    if evidence.ci_high < 0 and evidence.mean_diff < 0:
        return "lower"
    return None


def verdict_words(evidence: SettingsEvidence, failed: int, against: str, shown: str,
                  words: tuple[tuple[str, str], tuple[str, str], tuple[str, str]]) -> tuple[str, str]:
    """(word, sentence) of a held-out verdict: "cannot tell" when there are too few settings for the sign-flip to be
    significant, else ``words``' entry for a significant gain (none failed), a significant loss, or neither.
    ``against``: what the candidate is compared with; ``shown``: the evidence in words."""
    if not evidence.can_be_significant:
        return "cannot tell", (f"cannot tell against {against}: only {evidence.settings} held-out settings, and an "
                               f"exact sign-flip over settings needs at least {settings_needed()} to reach "
                               f"p < 0.05; {shown}")
    direction = significant_direction(evidence)
    if direction == "higher" and not failed:
        return words[0]
    return words[1] if direction == "lower" else words[2]


def evidence_phrase(evidence: SettingsEvidence, digits: int = 3, what: str = "mean") -> str:
    """'mean +0.021 [0.008, 0.034], exact sign-flip over settings p = 0.031'."""
    test = "exact sign-flip over settings" if evidence.method.startswith("exact") else \
        "Monte Carlo sign-flip over settings"
    return (f"{what} {evidence.mean_diff:+.{digits}f} [{evidence.ci_low:+.{digits}f}, {evidence.ci_high:+.{digits}f}], "
            f"{test} p = {evidence.p_value:.2g}")
