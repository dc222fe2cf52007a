"""llm2.stats against hand-computed values: paired tests, win rates, and evidence over settings."""

import itertools
import math

import numpy as np
import pytest

from llm2.stats import (count_wins, evidence_phrase, mean_std, paired_test, seeds_phrase, settings_evidence,
                        settings_needed, win_rate_ci)


def test_mean_std_uses_sample_std_and_zero_for_one_value():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt(5 / 3))  # squared deviations 2.25+0.25+0.25+2.25 = 5, over n-1 = 3
    assert mean_std([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        mean_std([])


def test_wilson_interval_by_hand():
    # 8 wins of 10: z = 1.95996, centre (0.8 + z²/20) / (1 + z²/10) = 0.71674, half-width 0.22657.
    rate, low, high = win_rate_ci(8, 10)
    assert rate == 0.8
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    # The interval stays inside [0, 1] at the edges, unlike the normal approximation.
    rate, low, high = win_rate_ci(0, 5)
    assert (rate, low) == (0.0, 0.0) and 0 < high < 0.5
    assert win_rate_ci(5, 5)[2] == 1.0
    # Wider at 99 %.
    assert win_rate_ci(8, 10, level=0.99)[1] < 0.4902
    with pytest.raises(ValueError):
        win_rate_ci(11, 10)
    with pytest.raises(ValueError):
        win_rate_ci(0, 0)


def test_count_wins_counts_ties_as_half():
    assert count_wins([1, 2, 3, 4], [0, 2, 5, 1]) == 2.5
    with pytest.raises(ValueError, match="equal lengths"):
        count_wins([1, 2], [1])


def test_paired_test_exact_by_hand():
    # Differences 1, 2, 3: mean 2, sd 1; t(0.975, 2) = 4.30265 -> half-width 4.30265 / sqrt(3) = 2.48414.
    # Sign flips: only +++ and --- reach |sum| = 6, so p = 2 / 8.
    result = paired_test([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert result.n == 3
    assert result.mean_diff == pytest.approx(2.0)
    assert result.ci_low == pytest.approx(2 - 2.48414, abs=1e-4)
    assert result.ci_high == pytest.approx(2 + 2.48414, abs=1e-4)
    assert result.p_value == pytest.approx(0.25)
    assert "exact" in result.method


def test_paired_test_exact_p_values_by_hand():
    # Differences 2, 1, 1, 1: |sum| = 5 only for all + or all -, so p = 2 / 16.
    assert paired_test([2, 1, 1, 1], [0, 0, 0, 0]).p_value == pytest.approx(0.125)
    # Differences that cancel: every pattern is at least as extreme, p = 1.
    assert paired_test([1, 0], [0, 1]).p_value == pytest.approx(1.0)
    # Identical scores: no evidence at all.
    same = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.p_value == 1.0 and same.mean_diff == 0.0
    one = paired_test([1.0], [0.0])
    assert one.p_value == 1.0 and math.isnan(one.ci_low)


def _brute_force_p(differences):
    observed = abs(sum(differences))
    sums = [abs(sum(s * d for s, d in zip(signs, differences)))
            for signs in itertools.product((-1, 1), repeat=len(differences))]
    return sum(value >= observed - 1e-12 for value in sums) / len(sums)


def test_exact_enumeration_matches_brute_force():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.2, 1, 9), rng.normal(0, 1, 9)
    assert paired_test(a, b).p_value == pytest.approx(_brute_force_p(list(a - b)))


def test_monte_carlo_above_16_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.3, 1, 17), rng.normal(0, 1, 17)
    first, second = paired_test(a, b), paired_test(a, b)
    assert "Monte Carlo" in first.method
    assert first.p_value == second.p_value  # seeded
    assert first.p_value == pytest.approx(_brute_force_p(list(a - b)), abs=0.01)
    # All 20 differences positive: the exact p would be 2 / 2**20; the estimate is its floor 1 / (draws + 1).
    assert paired_test(np.ones(20), np.zeros(20)).p_value < 1e-3


def test_paired_test_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([1, 2, 3], [1, 2])


def test_evidence_over_settings_counts_a_deterministic_task_once_per_setting():
    """Every seed gives the same numbers: a candidate better on 2 settings of 6 is two pieces of evidence, not
    2 × seeds, and two of six signs alike are far from significant (exact sign-flip: 2 of 4 patterns reach it)."""
    candidate = [[0.51] * 5, [0.52] * 5] + [[0.5] * 5] * 4
    reference = [[0.5] * 5] * 6
    evidence = settings_evidence(candidate, reference)
    assert evidence.deterministic and evidence.settings == 6 and evidence.wins == 2 and evidence.losses == 0
    assert evidence.p_value == pytest.approx(0.5)
    assert evidence.setting_errors == (0.0,) * 6 and evidence.mean_diff == pytest.approx(0.005)
    assert "not counted" in seeds_phrase(evidence)


def test_evidence_over_settings_with_noisy_seeds_and_its_bootstrap():
    rng = np.random.default_rng(0)
    candidate = [list(0.6 + 0.01 * rng.normal(size=3)) for _ in range(6)]
    reference = [list(0.5 + 0.01 * rng.normal(size=3)) for _ in range(6)]
    evidence = settings_evidence(candidate, reference)
    assert not evidence.deterministic and evidence.seeds == 3 and evidence.wins == 6
    assert evidence.p_value == pytest.approx(2 / 64)  # all six signs alike: 2 of 64 patterns
    assert 0 < evidence.ci_low < evidence.mean_diff < evidence.ci_high
    # Each setting's standard error is its seeds' sample std over sqrt(3).
    first = np.asarray(candidate[0]) - np.asarray(reference[0])
    assert evidence.setting_errors[0] == pytest.approx(first.std(ddof=1) / np.sqrt(3))
    assert settings_evidence(candidate, reference) == evidence  # seeded: the same numbers again
    assert "3 seeds each" == seeds_phrase(evidence)
    assert evidence_phrase(evidence).endswith("exact sign-flip over settings p = 0.031")


def test_five_settings_can_never_be_significant_by_sign_flip():
    assert settings_needed(0.05) == 6
    five = settings_evidence([[1.0, 1.1]] * 5, [[0.0, 0.1]] * 5)
    assert not five.can_be_significant and five.p_value == pytest.approx(2 / 32)
    assert settings_evidence([[1.0, 1.1]] * 6, [[0.0, 0.1]] * 6).can_be_significant


def test_hierarchical_bootstrap_uses_each_settings_own_seeds():
    """Settings with unequal seed counts: the interval stays within the range of the setting means."""
    evidence = settings_evidence([[1.0, 2.0, 3.0], [5.0]], [[0.0, 0.0, 0.0], [0.0]])
    assert 1.0 <= evidence.ci_low <= evidence.ci_high <= 5.0
    with pytest.raises(ValueError, match="as many candidate seeds"):
        settings_evidence([[1.0, 2.0]], [[1.0]])
