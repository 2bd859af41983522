"""The batch early rejects (matching.prefilter): never drop a pair the full model keeps. Pure.

``WeightBound`` bounds a pair's match weight from its full comparison; ``StagedReject``
from as few fields as it can, and must reject exactly the pairs ``WeightBound`` rejects.
Checked on every pair of demo records and of odd records (missing and placeholder
values, twins, swapped names, one-per-person identifiers, several names and addresses),
under settings that move the ``possible`` floor from very low to very high, so that
every stage of the staged reject gets to decide some pairs.
"""

from collections import Counter
from dataclasses import replace
from datetime import date
from itertools import combinations

import pytest

from matching import comparators as C
from matching import levels as L
from matching.defaults import DEFAULT_PARAMS
from matching.model import MatchGrade, MatchModel
from matching.prefilter import StagedReject, WeightBound
from matching.prepare import family_tf_key, given_tf_key
from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from patients.demo import generate_demo
from tests.factories import MRN_SYSTEM, SSN_SYSTEM

RECORDS = [r.data for r in generate_demo(160, seed=5)]


def _odd_records() -> list[PatientData]:
    """Records that take the comparators' rarer paths."""
    home = AddressData(line=("12 Main Street",), city="Springfield", postal_code="02139")
    ssn = IdentifierData(system=SSN_SYSTEM, value="123-45-6780", type="SS")

    def person(family="Okafor", given=("Chidi",), **extra) -> PatientData:
        fields = {
            "names": (NameData(family=family, given=given),),
            "birth_date": date(1984, 7, 19),
            "gender": "male",
            "addresses": (home,),
            "contacts": (ContactData(system="phone", value="+16175550143"),),
            "identifiers": (ssn,),
        }
        return PatientData(**{**fields, **extra})

    return [
        person(),
        person(given=("Chidi", "Emeka")),
        person(names=(NameData(family="Chidi", given=("Okafor",)),)),  # swapped
        person(given=("Nnamdi",)),  # a twin: same family, date, address, phone
        person(given=("Nnamdi",), multiple_birth=True, multiple_birth_order=2),
        person(multiple_birth=True, multiple_birth_order=1),
        person(names=(NameData(family="Okafor", given=("Chidi",), suffix=("Jr",)),)),
        person(names=(NameData(family="Okafor Sr", given=("Chidi",)),)),
        person(names=(NameData(text="Chidi Okafor"),)),  # free text only
        person(names=(NameData(family="Okafor"),)),  # no given name
        person(names=(NameData(given=("Chidi",)),)),
        person(names=()),
        person(names=(NameData(family="Unknown", given=("Baby", "Boy")),)),
        person(names=(NameData(family="Doe", given=("John",)),)),
        person(
            names=(
                NameData(family="Adeyemi", given=("Ngozi",)),
                NameData(family="Okafor", given=("Ngozi", "Chidi")),
            )
        ),
        person(birth_date=None),
        person(birth_date=date(1900, 1, 1)),
        person(birth_date=date(1984, 7, 20)),
        person(birth_date=date(1984, 7, 19).replace(year=1985)),
        person(gender=""),
        person(gender="female"),
        person(identifiers=(IdentifierData(system=SSN_SYSTEM, value="123-45-6781", type="SS"),)),  # close
        person(identifiers=(IdentifierData(system=SSN_SYSTEM, value="987-65-4320", type="SS"),)),  # conflict
        person(identifiers=(IdentifierData(system=SSN_SYSTEM, value="987-65-4320", type="SS", use="old"),)),
        person(identifiers=(IdentifierData(system=SSN_SYSTEM, value="000-00-0000", type="SS"),)),
        person(identifiers=(IdentifierData(system=MRN_SYSTEM, value="MRN-4711", type="MR"), ssn)),
        person(identifiers=(IdentifierData(system=MRN_SYSTEM, value="MRN-4712", type="MR"),)),
        person(identifiers=()),
        person(addresses=()),
        person(addresses=(AddressData(line=("Unknown",), city="Unknown", postal_code="00000"),)),
        person(addresses=(AddressData(line=("14 Main St",), city="Springfield", postal_code="02139-4307"),)),
        person(addresses=(AddressData(line=("12 Main Stret",), city="Springfeld", postal_code="02193"),)),
        person(
            addresses=(
                AddressData(line=("40 Elm Road", "Flat 2"), city="Boston", postal_code="02118"),
                home,
            )
        ),
        person(contacts=()),
        person(contacts=(ContactData(system="phone", value="555-0000"),)),
        person(contacts=(ContactData(system="phone", value="6175550143"),)),
        person(
            contacts=(
                ContactData(system="phone", value="+16175550199"),
                ContactData(system="email", value="c.okafor+clinic@gmail.com"),
            )
        ),
        person(contacts=(ContactData(system="email", value="cokafor@gmail.com"),)),
        person(contacts=(ContactData(system="email", value="noemail@none.com"),)),
    ]


ODD = _odd_records()


def _frequencies(records, *, floor: float | None = None) -> dict[str, dict[str, float]]:
    """Name frequencies as refresh_name_frequencies counts them (or all at ``floor``: rare)."""
    counts = {"family": Counter(), "given": Counter()}
    for data in records:
        counts["family"].update({family_tf_key(n.family) for n in data.names if n.family})
        counts["given"].update({given_tf_key(n.given) for n in data.names if n.given})
    return {
        kind: {key: floor or n / len(records) for key, n in values.items()} for kind, values in counts.items()
    }


def _thresholds(possible: float) -> dict[str, float]:
    return {"certain": max(0.999, possible + 1e-4), "probable": (possible + 1) / 2, "possible": possible}


SETTINGS = [
    # (possible threshold or None for the shipped ones, population, every name rare)
    (None, 100_000, False),
    (None, 1_000_000, True),  # every name rare: the largest term-frequency boosts
    (0.01, 10_000, False),  # a low floor
    (1e-6, 1_000_000, True),  # lower still: the weights of the last fields decide
    (0.95, 100_000, False),  # a high floor: the first stages decide
]


def _model_and_tf(possible, population, rare, records):
    params = DEFAULT_PARAMS if possible is None else replace(DEFAULT_PARAMS, thresholds=_thresholds(possible))
    return MatchModel(params, population=population), _frequencies(records, floor=1e-7 if rare else None)


@pytest.mark.parametrize(("possible", "population", "rare"), SETTINGS)
def test_early_rejects_never_drop_a_pair_the_full_model_grades_possible(possible, population, rare):
    records = RECORDS + ODD
    model, tf = _model_and_tf(possible, population, rare, records)
    bound, staged = WeightBound(model), StagedReject(model, tf)
    prepared = [model.prepare(r) for r in records]

    kept = rejected = 0
    for a, b in combinations(prepared, 2):
        comparisons = model.compare(a, b)
        result = model.score(comparisons, tf=tf)
        assert bound.weight(comparisons, tf) >= result.weight - 1e-9
        below = bound.below_possible(comparisons, tf)
        # The staged reject rejects exactly these pairs, and they are all certainly-not.
        assert staged.rejects(a, b) is below
        if below:
            rejected += 1
            assert result.grade == MatchGrade.CERTAINLY_NOT
        elif result.grade != MatchGrade.CERTAINLY_NOT:
            kept += 1

    pairs = len(prepared) * (len(prepared) - 1) // 2
    assert kept > 20  # the sample has pairs on the keeping side of the line
    if possible is None:
        assert rejected > 0.8 * pairs  # and the bound does reject most of the rest


def _stage_ceilings(staged: StagedReject, a, b) -> list[float]:
    """What ``StagedReject.rejects`` compares with the floor after each stage, in order."""
    w, options, tf = staged._w, staged.options, staged.tf
    total = staged.prior_weight + sum(
        w[field][level]
        for field, level in (
            (L.BIRTH_DATE, C.level_birth_date(a, b)),
            (L.GENDER, C.level_gender(a, b)),
            (L.MULTIPLE_BIRTH, C.level_multiple_birth(a, b)),
            (L.GENERATION, C.level_generation(a, b)),
            (L.PHONE, C.level_phone(a, b)),
            (L.EMAIL, C.level_email(a, b)),
            (L.IDENTIFIER, C.level_identifier(a, b, options)),
        )
    )
    ceilings = [total + staged._rest_after_1]
    family, family_key, given, given_key = C.name_levels(a, b)
    total += staged.bound.field_weight(L.FAMILY, family, family_key, tf)
    total += staged.bound.field_weight(L.GIVEN, given, given_key, tf)
    ceilings.append(total + staged._rest_after_2)
    postcode = C.level_postcode(a, b)
    total += w[L.POSTCODE][postcode] + w[L.CITY][C.level_city(a, b, postcode)]
    ceilings.append(total + staged._rest_after_3)
    ceilings.append(total + max(w[L.ADDRESS][level] for level in C.address_levels_possible(a, b)))
    ceilings.append(total + w[L.ADDRESS][C.level_address(a, b)])
    return ceilings


def test_each_stage_bounds_the_weight_and_each_decides_some_pairs():
    """Every stage's ceiling is at least the full bound; and over the settings, every
    stage but the first (never below any floor with the shipped weights) is the one that
    rejects some pairs, so none of them goes untested."""
    records = RECORDS + ODD
    decided_at = Counter()
    for possible, population, rare in SETTINGS:
        model, tf = _model_and_tf(possible, population, rare, records)
        staged = StagedReject(model, tf)
        prepared = [model.prepare(r) for r in records]
        for a, b in combinations(prepared, 2):
            full = staged.bound.weight(model.compare(a, b), tf)
            ceilings = _stage_ceilings(staged, a, b)
            assert all(c >= full - 1e-9 for c in ceilings)
            assert ceilings[-1] == pytest.approx(full, abs=1e-9)
            first = next((i for i, c in enumerate(ceilings) if c < staged.floor), None)
            decided_at[first] += 1
            assert staged.rejects(a, b) is (first is not None)
    assert all(decided_at[stage] > 0 for stage in (1, 2, 3, 4)), decided_at


def test_the_level_functions_agree_with_compare_prepared():
    """The staged reject reads ``level_*`` / ``name_levels``; the model ``compare_prepared``."""
    records = RECORDS[:60] + ODD
    prepared = [MatchModel().prepare(r) for r in records]
    options = C.DEFAULT_OPTIONS
    for a, b in combinations(prepared, 2):
        full = {c.field: c for c in C.compare_prepared(a, b, options)}
        assert all(c.level in L.all_levels(c.field) for c in full.values())
        family, family_key, given, given_key = C.name_levels(a, b)
        assert (family, family_key) == (full[L.FAMILY].level, full[L.FAMILY].tf_key)
        assert (given, given_key) == (full[L.GIVEN].level, full[L.GIVEN].tf_key)
        postcode = C.level_postcode(a, b)
        assert {
            L.BIRTH_DATE: C.level_birth_date(a, b),
            L.GENDER: C.level_gender(a, b),
            L.POSTCODE: postcode,
            L.ADDRESS: C.level_address(a, b),
            L.CITY: C.level_city(a, b, postcode),
            L.PHONE: C.level_phone(a, b),
            L.EMAIL: C.level_email(a, b),
            L.IDENTIFIER: C.level_identifier(a, b, options),
            L.MULTIPLE_BIRTH: C.level_multiple_birth(a, b),
            L.GENERATION: C.level_generation(a, b),
        } == {f: c.level for f, c in full.items() if f not in (L.FAMILY, L.GIVEN)}
        assert full[L.ADDRESS].level in C.address_levels_possible(a, b)


@pytest.mark.parametrize("rare", [False, True])
def test_a_fields_maximum_is_at_least_every_weight_it_can_add(rare):
    model = MatchModel(DEFAULT_PARAMS, population=1_000_000)
    bound = WeightBound(model)
    tf = _frequencies(RECORDS, floor=1e-9 if rare else None)
    for field in L.FIELDS:
        most = bound.max_field_weight(field, tf)
        keys = list(tf.get(field, {})) or [None]
        for level in L.all_levels(field):
            assert all(bound.field_weight(field, level, key, tf) <= most for key in keys)
