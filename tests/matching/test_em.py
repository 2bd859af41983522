"""Training: u from random pairs, m and lambda by EM on a synthetic sample. Pure."""

import math
import random

import pytest

from matching import levels as L
from matching.comparators import FieldComparison
from matching.defaults import DEFAULT_PARAMS
from matching.em import estimate_m_em, estimate_u, random_pair_prior, with_u

# A known truth, deliberately far from the shipped defaults, for five fields.
TRUE_M = {
    L.FAMILY: {"exact": 0.70, "jw_high": 0.12, "phonetic": 0.05, "partial": 0.03, "swapped": 0.01},
    L.GIVEN: {"exact": 0.60, "nickname": 0.15, "jw_high": 0.10, "middle": 0.02, "initial": 0.05},
    L.BIRTH_DATE: {"exact": 0.75, "transposed": 0.05, "year_off_by_one": 0.05, "one_off": 0.10},
    L.POSTCODE: {"exact": 0.55, "typo": 0.05, "partial": 0.10},
    L.PHONE: {"exact": 0.40, "last7": 0.10},
}
TRUE_U = {
    L.FAMILY: {"exact": 0.02, "jw_high": 0.02, "phonetic": 0.03, "partial": 0.01, "swapped": 0.001},
    L.GIVEN: {"exact": 0.03, "nickname": 0.01, "jw_high": 0.02, "middle": 0.01, "initial": 0.01},
    L.BIRTH_DATE: {"exact": 0.01, "transposed": 0.005, "year_off_by_one": 0.01, "one_off": 0.05},
    L.POSTCODE: {"exact": 0.05, "typo": 0.01, "partial": 0.10},
    L.PHONE: {"exact": 0.01, "last7": 0.01},
}


def _complete(table: dict) -> dict:
    """Add jw_mid (m 0.02 / u 0.05 where it exists) and the remainder as disagreement."""
    out = {}
    for field, levels in table.items():
        levels = dict(levels)
        if "jw_mid" in L.SCORED_LEVELS[field]:
            levels["jw_mid"] = 0.02 if table is TRUE_M else 0.05
        last = L.SCORED_LEVELS[field][-1]
        levels[last] = 1 - sum(levels.values())
        out[field] = levels
    return out


M, U = _complete(TRUE_M), _complete(TRUE_U)
TRUE_LAMBDA = 0.1


def synthetic_pairs(n: int, lam: float, seed: int = 20240611) -> list[dict[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        table = M if rng.random() < lam else U
        pair = {f: rng.choices(list(table[f]), weights=list(table[f].values()))[0] for f in table}
        pair[L.EMAIL] = L.MISSING  # neutral levels take no part
        pairs.append(pair)
    return pairs


def test_estimate_u_recovers_level_shares_from_random_pairs():
    u = estimate_u(synthetic_pairs(30_000, lam=0.0))
    assert set(u) == set(U)  # fields never scored are left out
    for field, levels in U.items():
        assert sum(u[field].values()) == pytest.approx(1)
        for level, true in levels.items():
            assert u[field][level] == pytest.approx(true, abs=0.006), (field, level)


def test_estimate_u_floors_levels_never_seen():
    u = estimate_u([{L.GENDER: L.EXACT}] * 10)
    assert u[L.GENDER][L.DISAGREE] == pytest.approx(1e-6, rel=1e-3)
    assert math.isfinite(math.log2(u[L.GENDER][L.DISAGREE]))


def test_em_recovers_known_m_and_lambda_with_u_fixed():
    initial = with_u(DEFAULT_PARAMS, U)
    result = estimate_m_em(synthetic_pairs(30_000, TRUE_LAMBDA), initial)
    assert result.converged
    assert result.lambda_ == pytest.approx(TRUE_LAMBDA, abs=0.01)
    for field, levels in M.items():
        for level, true in levels.items():
            assert result.params.levels[field][level].m == pytest.approx(true, abs=0.03), (field, level)
            assert result.params.levels[field][level].u == U[field][level]
    assert set(result.trained_fields) == set(M)
    # Fields with no scored pair keep their initial m.
    assert result.params.levels[L.EMAIL] == DEFAULT_PARAMS.levels[L.EMAIL]
    assert result.params.version == "default-1+em"


def test_em_leaves_blocking_fields_out():
    initial = with_u(DEFAULT_PARAMS, U)
    result = estimate_m_em(synthetic_pairs(5_000, TRUE_LAMBDA), initial, exclude=[L.BIRTH_DATE])
    assert L.BIRTH_DATE not in result.trained_fields
    assert result.params.levels[L.BIRTH_DATE] == initial.levels[L.BIRTH_DATE]


def test_em_accepts_field_comparisons_and_keeps_weights_finite():
    pairs = [
        (FieldComparison(L.FAMILY, L.EXACT), FieldComparison(L.GIVEN, L.EXACT)),
        (FieldComparison(L.FAMILY, L.DISAGREE), FieldComparison(L.GIVEN, L.DISAGREE)),
    ] * 50
    result = estimate_m_em(pairs, DEFAULT_PARAMS, max_iter=50)
    for level, p in result.params.levels[L.FAMILY].items():
        assert math.isfinite(p.weight), level
    assert "EM" in result.summary() and "family" in result.summary()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exclude": ["shoe_size"]}, "Unknown fields to exclude: shoe_size"),
        ({"initial_lambda": 0}, "initial_lambda=0"),
    ],
)
def test_em_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_m_em([{L.FAMILY: L.EXACT}], DEFAULT_PARAMS, **kwargs)


def test_em_needs_pairs():
    with pytest.raises(ValueError, match="at least one pair"):
        estimate_m_em([], DEFAULT_PARAMS)


def test_random_pair_prior_spreads_blocked_matches_over_all_pairs():
    # 10% of 50,000 blocked pairs match: 5,000 matching pairs among 10,000 records.
    prior = random_pair_prior(0.1, 50_000, 10_000)
    assert prior == pytest.approx(5_000 / (10_000 * 9_999 / 2))
    assert random_pair_prior(0.1, 50_000, 10_000, blocking_recall=0.5) == pytest.approx(2 * prior)
