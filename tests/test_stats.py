"""llm2.stats against hand-computed values: the sign-flip test and evidence over settings."""

import itertools
import math

import numpy as np
import pytest

from llm2.stats import (evidence_phrase, mean_std, seeds_phrase, settings_evidence, settings_needed,
                        sign_flip_p_value)


def test_mean_std_uses_sample_std_and_zero_for_one_value():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert std == pytest.approx(math.sqrt(5 / 3))  # squared deviations 2.25+0.25+0.25+2.25 = 5, over n-1 = 3
    assert mean_std([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        mean_std([])


def _brute_force_p(differences):
    observed = abs(sum(differences))
    sums = [abs(sum(s * d for s, d in zip(signs, differences)))
            for signs in itertools.product((-1, 1), repeat=len(differences))]
    return sum(value >= observed - 1e-12 for value in sums) / len(sums)


def test_sign_flip_p_values_by_hand():
    # Differences 1, 2, 3: only +++ and --- reach |sum| = 6, so p = 2 / 8.
    p_value, method = sign_flip_p_value([1.0, 2.0, 3.0])
    assert p_value == pytest.approx(0.25) and "exact" in method
    # Differences 2, 1, 1, 1: |sum| = 5 only for all + or all -, so p = 2 / 16.
    assert sign_flip_p_value([2, 1, 1, 1])[0] == pytest.approx(0.125)
    # Differences that cancel: every pattern is at least as extreme, p = 1; no difference or one: no evidence.
    assert sign_flip_p_value([1, -1])[0] == pytest.approx(1.0)
    assert sign_flip_p_value([0.0, 0.0, 0.0])[0] == 1.0 and sign_flip_p_value([1.0])[0] == 1.0


def test_exact_enumeration_matches_brute_force():
    rng = np.random.default_rng(3)
    differences = list(rng.normal(0.2, 1, 9) - rng.normal(0, 1, 9))
    assert sign_flip_p_value(differences)[0] == pytest.approx(_brute_force_p(differences))


def test_monte_carlo_above_16_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(7)
    differences = list(rng.normal(0.3, 1, 17) - rng.normal(0, 1, 17))
    (first, method), (second, _) = sign_flip_p_value(differences), sign_flip_p_value(differences)
    assert "Monte Carlo" in method
    assert first == second  # seeded
    assert first == pytest.approx(_brute_force_p(differences), abs=0.01)
    # All 20 differences positive: the exact p would be 2 / 2**20; the estimate is its floor 1 / (draws + 1).
    assert sign_flip_p_value(np.ones(20))[0] < 1e-3


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
