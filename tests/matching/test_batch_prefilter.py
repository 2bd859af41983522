"""The batch early reject (matching.prefilter): never drops a pair the full model keeps. Pure."""

from collections import Counter
from dataclasses import replace
from itertools import combinations

import pytest

from matching.defaults import DEFAULT_PARAMS
from matching.model import MatchGrade, MatchModel
from matching.prefilter import WeightBound
from matching.prepare import family_tf_key, given_tf_key
from patients.demo import generate_demo

RECORDS = [r.data for r in generate_demo(160, seed=5)]


def _frequencies(records, *, floor: float | None = None) -> dict[str, dict[str, float]]:
    """Name frequencies as refresh_name_frequencies counts them (or all at ``floor``: rare)."""
    counts = {"family": Counter(), "given": Counter()}
    for data in records:
        counts["family"].update({family_tf_key(n.family) for n in data.names if n.family})
        counts["given"].update({given_tf_key(n.given) for n in data.names if n.given})
    return {
        kind: {key: floor or n / len(records) for key, n in values.items()} for kind, values in counts.items()
    }


@pytest.mark.parametrize(
    ("thresholds", "population", "rare"),
    [
        (None, 100_000, False),
        (None, 1_000_000, True),  # every name rare: the largest term-frequency boosts
        ({"certain": 0.999, "probable": 0.5, "possible": 0.01}, 10_000, False),  # a low floor
    ],
)
def test_early_reject_never_drops_a_pair_the_full_model_grades_possible(thresholds, population, rare):
    params = DEFAULT_PARAMS if thresholds is None else replace(DEFAULT_PARAMS, thresholds=thresholds)
    model = MatchModel(params, population=population)
    bound = WeightBound(model)
    tf = _frequencies(RECORDS, floor=1e-7 if rare else None)
    prepared = [model.prepare(r) for r in RECORDS]

    kept = rejected = rejected_wrongly = 0
    for a, b in combinations(prepared, 2):
        comparisons = model.compare(a, b)
        result = model.score(comparisons, tf=tf)
        assert bound.weight(comparisons, tf) >= result.weight - 1e-9
        if bound.below_possible(comparisons, tf):
            rejected += 1
            rejected_wrongly += result.grade != MatchGrade.CERTAINLY_NOT
        elif result.grade != MatchGrade.CERTAINLY_NOT:
            kept += 1

    assert rejected_wrongly == 0
    assert kept > 20  # the sample has pairs on the keeping side of the line
    pairs = len(prepared) * (len(prepared) - 1) // 2
    assert rejected > 0.8 * pairs  # and the bound does reject most of the rest
