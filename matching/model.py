"""The Fellegi-Sunter match model: comparison levels -> weight -> probability -> grade.

Every scored level adds log2(m/u) bits; the prior adds log2(prior / (1 - prior)); the
sum is the match weight, and probability = 1 / (1 + 2**-weight). Three corrections
for what the independence assumption gets wrong:

* Term frequencies: agreeing exactly on a rare family name is stronger evidence than
  agreeing on "Smith". When the caller supplies the agreed value's relative frequency
  f, the level's u becomes max(f, tf_minimum_u) (as in Splink).
* Household: the address fields and the phone/email all say "same household", which
  family members share. Only the group with the most positive evidence counts in
  full; the other group's positive evidence is damped (``household_damping``).
* Guard rails cap the probability (and so the grade) of patterns that the weights
  overrate: apparent twins (same family name and birth date, different given names),
  a different multiple-birth order, Jr against Sr, two different national ids, or a
  wholly different birth date. A pair that trips one can never be ``certain``.

Every result carries its evidence: per field the two values compared, the level, m,
u and the weight it added. Pure code: no database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import models

from matching import levels as L
from matching.comparators import CompareOptions, FieldComparison, compare_prepared
from matching.defaults import DEFAULT_PARAMS
from matching.params import MatchParams
from matching.prepare import PreparedRecord, prepare
from patients.data import PatientData

# field -> (agreed value -> relative frequency in the index, or None when unknown)
TermFrequencies = Mapping[str, Callable[[str], float | None] | Mapping[str, float]]


class MatchGrade(models.TextChoices):
    """http://terminology.hl7.org/CodeSystem/match-grade (FHIR $match)."""

    CERTAIN = "certain", "Certain"
    PROBABLE = "probable", "Probable"
    POSSIBLE = "possible", "Possible"
    CERTAINLY_NOT = "certainly-not", "Certainly not"


class Evidence(NamedTuple):
    """One field's part of the match weight (a NamedTuple: cheap to make per pair)."""

    field: str
    level: str
    value_a: str
    value_b: str
    weight: float  # bits this field added to the match weight (after any damping)
    m: float | None = None  # None for a neutral level
    u: float | None = None  # the u used: the value's frequency when tf_frequency is set
    tf_frequency: float | None = None
    damping: float = 1.0  # < 1 when counted at a discount as household evidence

    def to_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "weight": round(self.weight, 3)}


@dataclass(frozen=True, slots=True)
class GuardRail:
    name: str
    ceiling: float
    reason: str


@dataclass(frozen=True)
class MatchResult:
    weight: float  # match weight in bits, prior included
    probability: float  # after the guard rails
    grade: MatchGrade
    evidence: tuple[Evidence, ...]
    guard_rails: tuple[GuardRail, ...] = ()
    unguarded_probability: float = 0.0
    prior_weight: float = 0.0
    params_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "weight": round(self.weight, 3),
            "probability": self.probability,
            "grade": str(self.grade),
            "unguarded_probability": self.unguarded_probability,
            "prior_weight": round(self.prior_weight, 3),
            "params_version": self.params_version,
            "evidence": [e.to_dict() for e in self.evidence],
            "guard_rails": [
                {"name": g.name, "ceiling": g.ceiling, "reason": g.reason} for g in self.guard_rails
            ],
        }


# Evidence(...) goes through a Python-level __new__; this is the same tuple at a quarter
# of the cost, which matters at a dozen per pair and millions of pairs.
_evidence = tuple.__new__


def probability_from_weight(weight: float) -> float:
    # Clamped so that 2**-weight never overflows.
    return 1.0 / (1.0 + 2.0 ** (-max(-1000.0, min(1000.0, weight))))


_NAME_AGREES = frozenset({L.EXACT, L.JW_HIGH, L.PHONETIC, L.PARTIAL})
_GIVEN_SIMILAR = frozenset({L.JW_HIGH, L.MIDDLE, L.INITIAL, L.JW_MID, L.PLACEHOLDER, L.MISSING})

_REASONS = {
    "twins_given_similar": "Same family name and birth date, given names not the same: possibly twins.",
    "twins_given_differs": "Same family name and birth date, different given names: likely twins.",
    "multiple_birth_order_differs": "Different multiple-birth order: twins or triplets.",
    "generation_differs": "Different generational suffixes (Jr/Sr): parent and child.",
    "identifier_conflict": "Different values of an identifier that allows one per person.",
    "birth_date_differs": "Birth dates disagree completely: possibly a relative with the same name.",
}


def guard_rails_tripped(levels: Mapping[str, str]) -> list[str]:
    """Names of the guard rails a pair trips, from its field -> level map."""
    tripped = []
    family, given = levels.get(L.FAMILY), levels.get(L.GIVEN)
    if family in _NAME_AGREES and levels.get(L.BIRTH_DATE) == L.EXACT:
        # Twins do not share an identifier value, so a shared one makes a wholly
        # different given name look like a data error rather than a sibling; still
        # never certain (a parent's id is sometimes typed on a child's record).
        if given == L.DISAGREE and levels.get(L.IDENTIFIER) != L.EXACT:
            tripped.append("twins_given_differs")
        elif given in _GIVEN_SIMILAR or given == L.DISAGREE:
            tripped.append("twins_given_similar")
    if levels.get(L.MULTIPLE_BIRTH) == L.DIFFERS:
        tripped.append("multiple_birth_order_differs")
    if levels.get(L.GENERATION) == L.DIFFERS:
        tripped.append("generation_differs")
    if levels.get(L.IDENTIFIER) == L.CONFLICT:
        tripped.append("identifier_conflict")
    if levels.get(L.BIRTH_DATE) == L.DISAGREE:
        tripped.append("birth_date_differs")
    return tripped


def _frequency(source: Callable[[str], float | None] | Mapping[str, float], key: str) -> float | None:
    if isinstance(source, Mapping):
        return source.get(key)
    return source(key)


class MatchModel:
    """Scores compared pairs with one parameter set. Usage::

    model = MatchModel(params, population=index_size)   # params default: shipped
    probe = model.prepare(probe_data)                    # once per probe
    for candidate in candidates:
        result = model.match(probe, candidate_prepared, tf={"family": freq, ...})
        result.grade, result.probability, result.evidence
    """

    def __init__(self, params: MatchParams = DEFAULT_PARAMS, *, population: int | None = None) -> None:
        params.validate()
        self.params = params
        self.prior = params.prior_for(population)
        self.prior_weight = math.log2(self.prior / (1 - self.prior))
        self.options = CompareOptions(
            unique_identifier_systems=frozenset(params.unique_identifier_systems),
            unique_identifier_types=frozenset(params.unique_identifier_types),
        )
        # (field, level) -> (weight, m, u), precomputed once.
        self._table: dict[tuple[str, str], tuple[float, float, float]] = {
            (f, lvl): (p.weight, p.m, p.u) for f, lv in params.levels.items() for lvl, p in lv.items()
        }
        self._neutral = {(f, lvl): w for f, ws in params.neutral_weights.items() for lvl, w in ws.items()}
        self._tf = {(f, lvl) for f, lvls in params.tf_levels.items() for lvl in lvls}
        self._group_of = {f: i for i, g in enumerate(params.household_groups) for f in g}
        t = params.thresholds
        self._grades = (
            (t["certain"], MatchGrade.CERTAIN),
            (t["probable"], MatchGrade.PROBABLE),
            (t["possible"], MatchGrade.POSSIBLE),
        )

    prepare = staticmethod(prepare)

    def compare(self, a: PreparedRecord, b: PreparedRecord) -> tuple[FieldComparison, ...]:
        return compare_prepared(a, b, self.options)

    def match(
        self,
        a: PatientData | PreparedRecord,
        b: PatientData | PreparedRecord,
        *,
        tf: TermFrequencies | None = None,
    ) -> MatchResult:
        """Compare and score in one call (prepares raw records on the fly)."""
        pa = a if isinstance(a, PreparedRecord) else prepare(a)
        pb = b if isinstance(b, PreparedRecord) else prepare(b)
        return self.score(self.compare(pa, pb), tf=tf)

    def grade(self, probability: float) -> MatchGrade:
        for threshold, grade in self._grades:
            if probability >= threshold:
                return grade
        return MatchGrade.CERTAINLY_NOT

    def score(
        self, comparisons: Iterable[FieldComparison], *, tf: TermFrequencies | None = None
    ) -> MatchResult:
        params = self.params
        table, neutral, tf_levels = self._table, self._neutral, self._tf
        evidence: list[Evidence] = []
        levels: dict[str, str] = {}
        for field, level, value_a, value_b, tf_key in comparisons:
            levels[field] = level
            row = table.get((field, level))
            if row is None:
                w = neutral.get((field, level), 0.0) if neutral else 0.0
                row = (field, level, value_a, value_b, w, None, None, None, 1.0)
                evidence.append(_evidence(Evidence, row))
                continue
            w, m, u = row
            freq = None
            if tf_key and tf and field in tf and (field, level) in tf_levels:
                freq = _frequency(tf[field], tf_key)
                if freq is not None and freq > 0:
                    u = max(min(freq, 1.0), params.tf_minimum_u)
                    w = math.log2(m / u)
                else:
                    freq = None
            evidence.append(_evidence(Evidence, (field, level, value_a, value_b, w, m, u, freq, 1.0)))

        if self._group_of and params.household_damping < 1:
            evidence = self._damp_household(evidence)

        weight = self.prior_weight + sum(e.weight for e in evidence)
        raw = probability_from_weight(weight)
        probability, rails = raw, []
        for name in guard_rails_tripped(levels):
            ceiling = params.guard_rails.get(name)
            if ceiling is None:
                continue
            rails.append(GuardRail(name, ceiling, _REASONS[name]))
            probability = min(probability, ceiling)
        return MatchResult(
            weight=weight,
            probability=probability,
            grade=self.grade(probability),
            evidence=tuple(evidence),
            guard_rails=tuple(rails),
            unguarded_probability=raw,
            prior_weight=self.prior_weight,
            params_version=params.version,
        )

    def _damp_household(self, evidence: list[Evidence]) -> list[Evidence]:
        """Count only the strongest household group's positive evidence in full."""
        positive: dict[int, float] = {}
        for e in evidence:
            g = self._group_of.get(e.field)
            if g is not None and e.weight > 0:
                positive[g] = positive.get(g, 0.0) + e.weight
        if len(positive) < 2:
            return evidence
        strongest = max(positive, key=positive.__getitem__)
        factor = self.params.household_damping
        out = []
        for e in evidence:
            g = self._group_of.get(e.field)
            if g is not None and g != strongest and e.weight > 0:
                e = e._replace(weight=e.weight * factor, damping=factor)
            out.append(e)
        return out
