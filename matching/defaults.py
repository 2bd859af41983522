"""The shipped parameter set: works out of the box, before any EM training.

Where the numbers come from (all m and u are conditional on the field being scored,
i.e. both values present and not placeholders, so each field's m and u sum to 1):

* u (chance agreement between different people) is reasoned from population
  statistics for a mixed, regional index of ~1M patients: exact family name
  u = 0.0015 is sum(f^2) over the surname distribution (term frequencies replace it
  per name when the caller supplies them); exact given name 0.01 likewise; exact birth
  date 4e-5 = 1/(365 x 70 years); the same postcode 0.01 (a regional index shares
  postcodes a lot); the same address line *within* a postcode about 1/4000 households;
  the same phone or email 1e-5 (one household in ~100k, plus shared work numbers).
* m (agreement between records of the same person) follows Splink's typical trained
  values on registration data: ~85-90% exact agreement on names and birth date, a few
  percent typos (Jaro-Winkler, one-off dates), 3-5% outright disagreement (married
  names, wrong person's date), and 20-35% disagreement on address and phone (people
  move and change numbers).
* prior: 0.1 expected duplicate records per record over an index of 1M, i.e. 1e-7 that
  two random records are one person. ``MatchModel(params, population=N)`` rescales it
  to the index at hand through ``expected_duplicates_per_record``.

With these numbers "John Smith, 1980-03-04, male" alone (term frequencies of Smith
~1% and John ~3.5% supplied) gets ~0.90: probable, not certain. In a 1M index about
one in sixty such probes has a different John Smith born that day, so certain needs
one more identifying agreement (phone, email, address line, national id); a shared
postcode alone brings it to ~0.998, still probable. A rare name with the same birth
date is certain on its own. See ``matching.model`` for the household
correction and the guard rails, which stop twins and same-name parents/children at
possible.
"""

from __future__ import annotations

from matching import levels as L
from matching.comparators import DEFAULT_UNIQUE_IDENTIFIER_SYSTEMS, DEFAULT_UNIQUE_IDENTIFIER_TYPES
from matching.params import LevelParams, MatchParams

DEFAULT_EXPECTED_DUPLICATES_PER_RECORD = 0.1
DEFAULT_POPULATION = 1_000_000


def _field(**levels: tuple[float, float]) -> dict[str, LevelParams]:
    """Levels given as (m, u); the last one (disagreement) takes what is left of 1."""
    *named, (last_name, _) = levels.items()
    out = {name: LevelParams(m, u) for name, (m, u) in named}
    out[last_name] = LevelParams(
        round(1 - sum(p.m for p in out.values()), 9), round(1 - sum(p.u for p in out.values()), 9)
    )
    return out


REST = (0.0, 0.0)  # placeholder for "the remainder" in _field

DEFAULT_LEVELS = {
    L.FAMILY: _field(
        exact=(0.86, 0.0015),
        jw_high=(0.05, 0.001),
        phonetic=(0.02, 0.002),
        partial=(0.02, 0.0002),
        swapped=(0.005, 0.000001),
        jw_mid=(0.01, 0.02),
        disagree=REST,
    ),
    L.GIVEN: _field(
        exact=(0.84, 0.01),
        nickname=(0.04, 0.002),
        jw_high=(0.04, 0.003),
        middle=(0.015, 0.001),
        initial=(0.02, 0.002),
        jw_mid=(0.015, 0.03),
        disagree=REST,
    ),
    L.BIRTH_DATE: _field(
        exact=(0.90, 0.00004),
        transposed=(0.01, 0.000015),
        year_off_by_one=(0.012, 0.00008),
        one_off=(0.045, 0.004),
        disagree=REST,
    ),
    L.GENDER: _field(exact=(0.97, 0.5), disagree=REST),
    L.POSTCODE: _field(exact=(0.75, 0.01), typo=(0.02, 0.002), partial=(0.06, 0.05), disagree=REST),
    L.ADDRESS: _field(
        exact=(0.65, 0.0003),
        jw_high=(0.10, 0.0002),
        partial=(0.04, 0.0002),
        jw_mid=(0.04, 0.01),
        disagree=REST,
    ),
    L.CITY: _field(exact=(0.85, 0.1), jw_high=(0.03, 0.005), disagree=REST),
    L.PHONE: _field(exact=(0.65, 0.00001), last7=(0.05, 0.0001), disagree=REST),
    L.EMAIL: _field(exact=(0.70, 0.00001), local_close=(0.10, 0.0001), disagree=REST),
    # Scored only when the records share an identifier value, or a one-per-person
    # system: agreement on a national id is very strong, a different value strong
    # disagreement (the guard rail keeps such a pair below certain).
    L.IDENTIFIER: _field(exact=(0.90, 0.000001), close=(0.05, 0.00001), conflict=REST),
    L.MULTIPLE_BIRTH: _field(same=(0.99, 0.5), differs=REST),
    L.GENERATION: _field(same=(0.95, 0.6), differs=REST),
}

DEFAULT_PARAMS = MatchParams(
    version="default-1",
    description="Shipped defaults (reasoned, not trained)",
    levels=DEFAULT_LEVELS,
    prior=DEFAULT_EXPECTED_DUPLICATES_PER_RECORD / DEFAULT_POPULATION,
    expected_duplicates_per_record=DEFAULT_EXPECTED_DUPLICATES_PER_RECORD,
    # certain must keep precision >= 0.999 even where the independence assumption
    # flatters a pair; probable is where a steward should look first.
    thresholds={"certain": 0.999, "probable": 0.9, "possible": 0.3},
    tf_levels={L.FAMILY: (L.EXACT,), L.GIVEN: (L.EXACT,)},
    tf_minimum_u=1e-5,
    # People in one household share the address and the phone/email: counting both in
    # full would make a mother and her child look like one person.
    household_groups=((L.ADDRESS, L.POSTCODE, L.CITY), (L.PHONE, L.EMAIL)),
    household_damping=0.1,
    guard_rails={
        "twins_given_similar": 0.99,
        "twins_given_differs": 0.45,
        "multiple_birth_order_differs": 0.3,
        "generation_differs": 0.1,
        "identifier_conflict": 0.99,
        "birth_date_differs": 0.8,
    },
    unique_identifier_systems=tuple(sorted(DEFAULT_UNIQUE_IDENTIFIER_SYSTEMS)),
    unique_identifier_types=tuple(sorted(DEFAULT_UNIQUE_IDENTIFIER_TYPES)),
)
DEFAULT_PARAMS.validate()
