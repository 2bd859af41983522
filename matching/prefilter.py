"""A cheap, safe early reject for batch detection: an upper bound on the match weight.

``MatchModel.score`` turns a pair's comparison levels into a ``MatchResult``: per
field an ``Evidence`` tuple, the household damping, the guard rails, the result
object. In batch detection 96% of the pairs end ``certainly-not``, and for those that
work is thrown away. ``WeightBound`` sums the same per-level weights (with the same
term-frequency adjustment) and nothing else, from the same levels:

* the household damping only ever scales positive weights down, so leaving it out
  can only raise the sum;
* the guard rails only ever cap the probability, so leaving them out can only raise
  the probability;
* probability and grade rise with the weight.

So the bound's probability is at least the full model's, and a pair whose bound is
below the ``possible`` threshold is ``certainly-not`` under the full model too: the
early reject never drops a pair the model would grade ``possible`` or above
(tests/matching/test_batch.py compares both on the benchmark-like demo data). If
``MatchModel.score`` ever gains a correction that can *raise* a weight, this module
must learn it too; that test is the tripwire. Pure code: no database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from matching.comparators import FieldComparison
from matching.model import MatchModel, probability_from_weight


class WeightBound:
    """``below_possible(comparisons, tf)``: True only when the full score is certainly-not."""

    def __init__(self, model: MatchModel) -> None:
        params = model.params
        self.prior_weight = model.prior_weight
        self.tf_minimum_u = params.tf_minimum_u
        # (field, level) -> weight; for term-frequency levels also m.
        self.weights: dict[tuple[str, str], float] = {}
        for field, levels in params.levels.items():
            for level, p in levels.items():
                self.weights[(field, level)] = p.weight
        for field, levels in params.neutral_weights.items():
            for level, w in levels.items():
                self.weights.setdefault((field, level), w)
        self.tf_m = {
            (f, lvl): params.levels[f][lvl].m for f, lvls in params.tf_levels.items() for lvl in lvls
        }
        possible = params.thresholds["possible"]
        # The weight whose probability is the possible threshold; a hair of slack
        # against floating-point rounding in probability_from_weight.
        self.floor = math.log2(possible / (1 - possible)) - 1e-9
        self.possible = possible

    def weight(self, comparisons: Iterable[FieldComparison], tf: Mapping | None = None) -> float:
        """The match weight without household damping (an upper bound on the model's)."""
        total = self.prior_weight
        weights, tf_m = self.weights, self.tf_m
        for field, level, _, _, tf_key in comparisons:
            w = weights.get((field, level), 0.0)
            if tf_key and tf and field in tf:
                m = tf_m.get((field, level))
                if m is not None:
                    source = tf[field]
                    freq = source.get(tf_key) if isinstance(source, Mapping) else source(tf_key)
                    if freq is not None and freq > 0:
                        w = math.log2(m / max(min(freq, 1.0), self.tf_minimum_u))
            total += w
        return total

    def below_possible(self, comparisons: Iterable[FieldComparison], tf: Mapping | None = None) -> bool:
        weight = self.weight(comparisons, tf)
        return weight < self.floor and probability_from_weight(weight) < self.possible
