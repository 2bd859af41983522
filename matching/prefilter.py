"""Cheap, safe early rejects for batch detection: upper bounds on the match weight.

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
early reject never drops a pair the model would grade ``possible`` or above.

``StagedReject`` goes one step further and does not compare every field of such a
pair: it takes the fields one stage at a time, cheapest and most telling first, adds
what ``WeightBound`` would add for each, and stops as soon as that sum plus the most
the remaining fields could still add (each at its best level, term frequencies
included) is below the floor. The levels come from the comparators' own ``level_*``
functions, so when every stage has run its sum is ``WeightBound``'s, and it rejects
exactly the pairs ``WeightBound`` rejects (only sooner).

tests/matching/test_batch_prefilter.py checks both against the full model on
demo-like data and odd records. If ``MatchModel.score`` ever gains a correction that
can *raise* a weight, or the comparators a level or a field, this module must learn
it too; that test is the tripwire. Pure code: no database.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

from matching import comparators as C
from matching import levels as L
from matching.comparators import FieldComparison
from matching.model import MatchModel, TermFrequencies, probability_from_weight
from matching.prepare import PreparedRecord


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

    def field_weight(self, field: str, level: str, tf_key: str | None, tf: Mapping | None) -> float:
        """What one field's level adds (term-frequency adjusted as the model does)."""
        w = self.weights.get((field, level), 0.0)
        if tf_key and tf and field in tf:
            m = self.tf_m.get((field, level))
            if m is not None:
                source = tf[field]
                freq = source.get(tf_key) if isinstance(source, Mapping) else source(tf_key)
                if freq is not None and freq > 0:
                    w = math.log2(m / max(min(freq, 1.0), self.tf_minimum_u))
        return w

    def max_field_weight(self, field: str, tf: Mapping | None) -> float:
        """The most ``field_weight`` can give the field, over every level and value."""
        best = max(0.0, *(self.weights.get((field, level), 0.0) for level in L.all_levels(field)))
        if tf and field in tf:
            # A term-frequency u is never below tf_minimum_u.
            for (f, _level), m in self.tf_m.items():
                if f == field:
                    best = max(best, math.log2(m / self.tf_minimum_u))
        return best

    def weight(self, comparisons: Iterable[FieldComparison], tf: Mapping | None = None) -> float:
        """The match weight without household damping (an upper bound on the model's)."""
        total = self.prior_weight
        for field, level, _, _, tf_key in comparisons:
            total += self.field_weight(field, level, tf_key, tf)
        return total

    def rejects_weight(self, weight: float) -> bool:
        return weight < self.floor and probability_from_weight(weight) < self.possible

    def below_possible(self, comparisons: Iterable[FieldComparison], tf: Mapping | None = None) -> bool:
        return self.rejects_weight(self.weight(comparisons, tf))


class _Weights(dict):
    """level -> weight; a level without one weighs 0, as in WeightBound and the model."""

    def __missing__(self, level: str) -> float:
        return 0.0


class StagedReject:
    """``rejects(a, b)``: True only when ``WeightBound`` rejects the pair's full comparison.

    Made once per pass (the term frequencies are fixed for it). The stages, in order:

    1. birth date, gender, multiple-birth order, generation, phone, e-mail, identifier:
       cheap, and each either small or, missing on one side, known at once;
    2. family and given names (the costliest of the decisive ones);
    3. postcode and city (a city is ``implied`` by an exact postcode);
    4. the address, first bounded without its Jaro-Winkler scores
       (``comparators.address_levels_possible``), then compared if still needed.
    """

    def __init__(self, model: MatchModel, tf: TermFrequencies | None = None) -> None:
        bound = self.bound = WeightBound(model)
        self.tf = tf
        self.options = model.options
        self.prior_weight, self.floor, self.possible = bound.prior_weight, bound.floor, bound.possible

        def levels(field: str) -> dict[str, float]:
            return _Weights(
                (level, bound.field_weight(field, level, None, None)) for level in L.all_levels(field)
            )

        self._w = {field: levels(field) for field in L.FIELDS}
        best = {field: bound.max_field_weight(field, tf) for field in L.FIELDS}
        pc, city = self._w[L.POSTCODE], self._w[L.CITY]
        # With an exact postcode the city is implied (or missing), never scored. (0.0:
        # what a level without a weight adds, as in max_field_weight.)
        postcode_city = max(
            pc[L.EXACT] + max(0.0, city[L.IMPLIED], city[L.MISSING]),
            max(0.0, *(w for level, w in pc.items() if level != L.EXACT)) + best[L.CITY],
        )
        # The most what is still to compare can add, after stages 1, 2 and 3.
        self._rest_after_1 = best[L.FAMILY] + best[L.GIVEN] + postcode_city + best[L.ADDRESS]
        self._rest_after_2 = postcode_city + best[L.ADDRESS]
        self._rest_after_3 = best[L.ADDRESS]

    def _names_weight(self, pa: PreparedRecord, pb: PreparedRecord) -> float:
        family, family_key, given, given_key = C.name_levels(pa, pb)
        w, field_weight, tf = self._w, self.bound.field_weight, self.tf
        return (
            w[L.FAMILY][family] if family_key is None else field_weight(L.FAMILY, family, family_key, tf)
        ) + (w[L.GIVEN][given] if given_key is None else field_weight(L.GIVEN, given, given_key, tf))

    def rejects(self, pa: PreparedRecord, pb: PreparedRecord) -> bool:
        w, floor, possible = self._w, self.floor, self.possible
        # Summed in another order than WeightBound's: the floor's slack covers the rounding.
        total = (
            self.prior_weight
            + w[L.BIRTH_DATE][C.level_birth_date(pa, pb)]
            + w[L.GENDER][C.level_gender(pa, pb)]
            + w[L.MULTIPLE_BIRTH][C.level_multiple_birth(pa, pb)]
            + w[L.GENERATION][C.level_generation(pa, pb)]
            + w[L.PHONE][C.level_phone(pa, pb)]
            + w[L.EMAIL][C.level_email(pa, pb)]
            + w[L.IDENTIFIER][C.level_identifier(pa, pb, self.options)]
        )
        if (ceiling := total + self._rest_after_1) < floor and probability_from_weight(ceiling) < possible:
            return True
        total += self._names_weight(pa, pb)
        if (ceiling := total + self._rest_after_2) < floor and probability_from_weight(ceiling) < possible:
            return True
        postcode = C.level_postcode(pa, pb)
        total += w[L.POSTCODE][postcode] + w[L.CITY][C.level_city(pa, pb, postcode)]
        if (ceiling := total + self._rest_after_3) < floor and probability_from_weight(ceiling) < possible:
            return True
        address = w[L.ADDRESS]
        ceiling = total + max(address[level] for level in C.address_levels_possible(pa, pb))
        if ceiling < floor and probability_from_weight(ceiling) < possible:
            return True
        return self.bound.rejects_weight(total + address[C.level_address(pa, pb)])


def staged_reject_for(model: MatchModel, tf: TermFrequencies | None) -> StagedReject:
    """A ``StagedReject`` for one probe's term frequencies (``match_patient``).

    Building one costs ~140 µs; what it builds depends on the model and on which fields
    ``tf`` covers, not on their values. So one is kept per model and field set, and a
    probe gets a shallow copy carrying its own ``tf`` (a few µs).
    """
    shape = frozenset(tf) if tf else frozenset()
    kept = model.__dict__.setdefault("_staged_rejects", {})
    template = kept.get(shape)
    if template is None:
        template = kept[shape] = StagedReject(model, tf)
    staged = copy.copy(template)
    staged.tf = tf
    return staged
