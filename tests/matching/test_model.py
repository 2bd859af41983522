"""The match model: weights, term frequencies, grades, guard rails, parameters. Pure."""

import json
import math
from dataclasses import replace
from datetime import date

import pytest

from matching import levels as L
from matching.comparators import FieldComparison
from matching.defaults import DEFAULT_PARAMS
from matching.model import MatchGrade, MatchModel, probability_from_weight
from matching.params import LevelParams, MatchParams, ParameterError, format_summary
from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from tests.factories import SSN_SYSTEM

MODEL = MatchModel()
# Relative frequencies as the search index would report them (folded name keys).
TF = {
    "family": {"smith": 0.01, "quispe": 1e-6},
    "given": {"john": 0.035, "xiomara": 2e-6},
}


def person(
    family: str = "Smith",
    given: tuple[str, ...] = ("John",),
    *,
    birth_date: date | None = date(1980, 3, 4),
    gender: str = "male",
    line: str | None = None,
    postal_code: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    ssn: str | None = None,
    **extra,
) -> PatientData:
    addresses = ()
    if line or postal_code:
        addresses = (AddressData(line=(line,) if line else (), city="Boston", postal_code=postal_code or ""),)
    contacts = ()
    if phone:
        contacts += (ContactData(system="phone", value=phone),)
    if email:
        contacts += (ContactData(system="email", value=email),)
    identifiers = (IdentifierData(system=SSN_SYSTEM, value=ssn, type="SS"),) if ssn else ()
    return PatientData(
        names=(NameData(family=family, given=given),),
        addresses=addresses,
        contacts=contacts,
        identifiers=identifiers,
        birth_date=birth_date,
        gender=gender,
        **extra,
    )


HOUSEHOLD = {"line": "1 Main St", "postal_code": "02134", "phone": "+1 617 555 0100"}


def evidence(result, field):
    return next(e for e in result.evidence if e.field == field)


# -- the arithmetic ---------------------------------------------------------------------


def test_match_weight_is_the_prior_plus_the_evidence_and_maps_to_a_probability():
    result = MODEL.match(person(**HOUSEHOLD), person(family="Smyth", **HOUSEHOLD), tf=TF)
    assert result.weight == pytest.approx(result.prior_weight + sum(e.weight for e in result.evidence))
    assert result.probability == pytest.approx(1 / (1 + 2**-result.weight))
    assert result.prior_weight == pytest.approx(math.log2(1e-7 / (1 - 1e-7)))


def test_each_scored_level_weighs_log2_m_over_u():
    result = MODEL.match(person(), person(given=("Peter",)))
    birth = evidence(result, L.BIRTH_DATE)
    p = DEFAULT_PARAMS.levels[L.BIRTH_DATE][L.EXACT]
    assert (birth.m, birth.u) == (p.m, p.u)
    assert birth.weight == pytest.approx(math.log2(p.m / p.u))
    given = evidence(result, L.GIVEN)
    assert given.level == L.DISAGREE and given.weight < -4


def test_neutral_levels_weigh_nothing_unless_configured():
    result = MODEL.match(person(), person(email="a@example.org"))
    email = evidence(result, L.EMAIL)
    assert (email.level, email.weight, email.m) == (L.MISSING, 0.0, None)
    strict = MatchModel(replace(DEFAULT_PARAMS, neutral_weights={"email": {"missing": -0.5}}))
    assert evidence(strict.match(person(), person()), L.EMAIL).weight == -0.5


def test_probability_never_overflows():
    assert probability_from_weight(5000) == 1.0
    assert probability_from_weight(-5000) == pytest.approx(0.0)


# -- term frequencies -------------------------------------------------------------------


def test_agreeing_on_a_rare_family_name_is_stronger_than_on_smith():
    smith = evidence(MODEL.match(person(), person(), tf=TF), L.FAMILY)
    rare = evidence(MODEL.match(person(family="Quispe"), person(family="Quispe"), tf=TF), L.FAMILY)
    m = DEFAULT_PARAMS.levels[L.FAMILY][L.EXACT].m
    assert smith.tf_frequency == 0.01 and smith.weight == pytest.approx(math.log2(m / 0.01))
    # 1e-6 is below the floor: u is bounded by tf_minimum_u, never near zero.
    assert rare.u == DEFAULT_PARAMS.tf_minimum_u
    assert rare.weight == pytest.approx(math.log2(m / DEFAULT_PARAMS.tf_minimum_u))
    assert rare.weight > smith.weight + 8


def test_term_frequencies_accept_a_callable_and_fall_back_when_unknown():
    calls = []

    def freq(key):
        calls.append(key)
        return None

    result = MODEL.match(person(family="O'Brien"), person(family="OBRIEN"), tf={"family": freq})
    family = evidence(result, L.FAMILY)
    assert calls == ["obrien"]
    assert family.tf_frequency is None and family.u == DEFAULT_PARAMS.levels[L.FAMILY][L.EXACT].u


def test_term_frequencies_apply_to_exact_agreement_only():
    result = MODEL.match(person(), person(family="Smyth"), tf={"family": lambda key: 0.5})
    assert evidence(result, L.FAMILY).tf_frequency is None


# -- grades ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probability", "grade"),
    [
        (0.9995, MatchGrade.CERTAIN),
        (0.999, MatchGrade.CERTAIN),
        (0.95, MatchGrade.PROBABLE),
        (0.5, MatchGrade.POSSIBLE),
        (0.1, MatchGrade.CERTAINLY_NOT),
    ],
)
def test_grades_follow_the_thresholds(probability, grade):
    assert MODEL.grade(probability) == grade


def test_identical_records_with_household_evidence_are_certain():
    result = MODEL.match(person(**HOUSEHOLD), person(**HOUSEHOLD), tf=TF)
    assert result.grade == MatchGrade.CERTAIN
    assert not result.guard_rails


def test_common_name_and_birth_date_alone_are_not_certain():
    # About one probe in sixty meets another John Smith born the same day in a 1M index.
    result = MODEL.match(person(), person(), tf=TF)
    assert result.grade == MatchGrade.PROBABLE


def test_common_name_and_birth_date_need_one_more_identifying_field_to_be_certain():
    postcode = MODEL.match(person(postal_code="02134"), person(postal_code="02134"), tf=TF)
    assert postcode.grade == MatchGrade.PROBABLE and postcode.probability > 0.998
    phone = MODEL.match(person(phone="617-555-0100"), person(phone="+16175550100"), tf=TF)
    assert phone.grade == MatchGrade.CERTAIN


def test_rare_name_and_birth_date_are_certain():
    a = person(family="Quispe", given=("Xiomara",), gender="female")
    assert MODEL.match(a, a, tf=TF).grade == MatchGrade.CERTAIN


def test_swapped_names_still_match():
    a, b = person(**HOUSEHOLD), person(family="John", given=("Smith",), **HOUSEHOLD)
    assert MODEL.match(a, b, tf=TF).grade == MatchGrade.CERTAIN


def test_placeholder_names_carry_no_weight():
    a = person(family="Doe", given=("John",), birth_date=date(1900, 1, 1), phone="000-000-0000")
    result = MODEL.match(a, a)
    assert all(e.weight == 0 for e in result.evidence if e.field != L.GENDER)
    assert result.grade == MatchGrade.CERTAINLY_NOT


def test_placeholder_identifier_carries_no_weight():
    a, b = person(ssn="000-00-0000"), person(ssn="000-00-0000")
    assert evidence(MODEL.match(a, b), L.IDENTIFIER).weight == 0


def test_a_shared_national_id_outweighs_a_disagreeing_name():
    a = person(ssn="123-45-6780", **HOUSEHOLD)
    b = person(family="Jones", ssn="123-45-6780", **HOUSEHOLD)
    assert MODEL.match(a, b, tf=TF).probability > 0.999


# -- twins, families, guard rails --------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "rail"),
    [
        ({"given": ("James",)}, "twins_given_differs"),
        ({"given": ("Mary",), "gender": "female"}, "twins_given_differs"),
        ({"given": ("Jayden",)}, "twins_given_similar"),
        ({"given": ("J",)}, "twins_given_similar"),
        ({"given": ("Baby Boy",)}, "twins_given_similar"),
        ({"given": ()}, "twins_given_similar"),
        ({"multiple_birth": True, "multiple_birth_order": 2}, "multiple_birth_order_differs"),
    ],
)
def test_twins_are_never_certain(other, rail):
    a = person(given=("Jaylen",), multiple_birth=True, multiple_birth_order=1, email="smiths@example.org")
    a = replace(a, addresses=person(**HOUSEHOLD).addresses, contacts=person(**HOUSEHOLD).contacts)
    b = replace(person(**{**HOUSEHOLD, **other}), contacts=a.contacts)
    if "given" not in other:
        b = replace(b, names=a.names)
    result = MODEL.match(a, b, tf=TF)
    assert result.unguarded_probability > 0.99  # the weights alone would merge them
    assert rail in [g.name for g in result.guard_rails]
    assert result.grade != MatchGrade.CERTAIN
    assert result.probability <= DEFAULT_PARAMS.guard_rails[rail]


def test_twins_with_different_given_names_are_at_most_possible():
    result = MODEL.match(person(**HOUSEHOLD), person(given=("James",), **HOUSEHOLD), tf=TF)
    assert result.grade == MatchGrade.POSSIBLE


def test_a_shared_identifier_rules_out_twins_but_never_makes_them_certain():
    # Twins do not share an id value, so a different given name is more likely a data
    # error; but a parent's id typed on both children's records happens, so not certain.
    a = person(ssn="123-45-6780", **HOUSEHOLD)
    b = person(given=("James",), ssn="123-45-6780", **HOUSEHOLD)
    result = MODEL.match(a, b, tf=TF)
    assert [g.name for g in result.guard_rails] == ["twins_given_similar"]
    assert result.grade == MatchGrade.PROBABLE


def test_mother_and_child_in_one_household_are_certainly_not():
    child = person(given=("Emma",), gender="female", birth_date=date(2015, 6, 7), **HOUSEHOLD)
    mother = person(given=("Mary",), gender="female", birth_date=date(1985, 1, 2), **HOUSEHOLD)
    assert MODEL.match(child, mother, tf=TF).grade == MatchGrade.CERTAINLY_NOT


def test_father_and_son_of_the_same_name_are_not_probable():
    son = person(**HOUSEHOLD)
    father = person(birth_date=date(1955, 6, 7), **HOUSEHOLD)
    result = MODEL.match(son, father, tf=TF)
    assert result.grade in (MatchGrade.POSSIBLE, MatchGrade.CERTAINLY_NOT)
    assert "birth_date_differs" in [g.name for g in result.guard_rails]


def test_junior_and_senior_are_certainly_not():
    jr = replace(person(**HOUSEHOLD), names=(NameData(family="Smith", given=("John",), suffix=("Jr",)),))
    sr = replace(jr, names=(NameData(family="Smith", given=("John",), suffix=("Sr",)),))
    assert MODEL.match(jr, sr, tf=TF).grade == MatchGrade.CERTAINLY_NOT


def test_different_national_ids_keep_a_pair_below_certain():
    a, b = person(ssn="123-45-6780", **HOUSEHOLD), person(ssn="987-65-4320", **HOUSEHOLD)
    result = MODEL.match(a, b, tf=TF)
    assert result.grade == MatchGrade.PROBABLE
    assert [g.name for g in result.guard_rails] == ["identifier_conflict"]


def test_household_evidence_counts_once_in_full():
    a, b = person(**HOUSEHOLD), person(**HOUSEHOLD)
    result = MODEL.match(a, b)
    phone = evidence(result, L.PHONE)
    assert phone.damping == DEFAULT_PARAMS.household_damping
    full = DEFAULT_PARAMS.levels[L.PHONE][L.EXACT].weight
    assert phone.weight == pytest.approx(full * DEFAULT_PARAMS.household_damping)
    plain = MatchModel(replace(DEFAULT_PARAMS, household_damping=1.0)).match(a, b)
    assert evidence(plain, L.PHONE).weight == pytest.approx(full)


def test_result_explains_every_field_and_serialises_to_json():
    result = MODEL.match(person(**HOUSEHOLD), person(family="Smyth", **HOUSEHOLD), tf=TF)
    assert [e.field for e in result.evidence] == list(L.FIELDS)
    family = evidence(result, L.FAMILY)
    assert (family.value_a, family.value_b, family.level) == ("Smith", "Smyth", L.PHONETIC)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["grade"] == result.grade and data["params_version"] == "default-1"


def test_score_takes_comparisons_from_anywhere():
    comparisons = [FieldComparison(L.BIRTH_DATE, L.EXACT, "1980-03-04", "1980-03-04")]
    result = MODEL.score(comparisons)
    assert result.weight == pytest.approx(
        MODEL.prior_weight + DEFAULT_PARAMS.levels[L.BIRTH_DATE]["exact"].weight
    )


# -- parameters --------------------------------------------------------------------------


def test_prior_follows_the_index_size():
    small = MatchModel(population=10_000)
    assert small.prior == pytest.approx(0.1 / 10_000)
    assert MatchModel().prior == DEFAULT_PARAMS.prior
    a = person()
    assert small.match(a, a, tf=TF).probability > MODEL.match(a, a, tf=TF).probability


def test_parameters_round_trip_through_json():
    params = MatchParams.from_json(DEFAULT_PARAMS.to_json())
    assert params == DEFAULT_PARAMS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("levels"), "missing 'levels'"),
        (lambda d: d["levels"]["family"].pop("exact"), "family: no m/u for level 'exact'"),
        (lambda d: d["levels"]["family"]["exact"].update(m=1.5), "m=1.5 is not in (0, 1]"),
        (lambda d: d["levels"]["family"]["exact"].update(u=0), "u=0.0 is not in (0, 1]"),
        (lambda d: d["levels"].update(shoe_size={}), "Unknown field 'shoe_size'"),
        (lambda d: d["thresholds"].update(probable=0.9999), "1 > certain > probable > possible"),
        (lambda d: d["guard_rails"].update(vibes=0.5), "Unknown guard rail 'vibes'"),
        (lambda d: d["guard_rails"].update(twins_given_similar=0.9995), "not in (0, certain threshold)"),
        (lambda d: d.update(prior=0), "prior=0.0 is not in (0, 1)"),
        (lambda d: d.update(schema=99), "Unsupported parameter schema"),
        (lambda d: d["levels"]["family"].update(exact="high"), "malformed"),
    ],
)
def test_malformed_parameters_are_rejected_with_a_clear_message(change, message):
    data = DEFAULT_PARAMS.to_dict()
    change(data)
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MatchParams.from_json(json.dumps(data))


def test_not_json_is_rejected():
    with pytest.raises(ParameterError, match="not valid JSON"):
        MatchParams.from_json("{nope")


def test_default_levels_are_probabilities_summing_to_one():
    for field in L.FIELDS:
        levels = DEFAULT_PARAMS.levels[field]
        assert sum(p.m for p in levels.values()) == pytest.approx(1)
        assert sum(p.u for p in levels.values()) == pytest.approx(1)
        agree, disagree = levels[L.SCORED_LEVELS[field][0]], levels[L.SCORED_LEVELS[field][-1]]
        assert agree.weight > 0 > disagree.weight


def test_summary_lists_every_level_with_its_weight():
    text = format_summary(DEFAULT_PARAMS)
    assert "default-1" in text
    for field in L.FIELDS:
        for level in L.SCORED_LEVELS[field]:
            assert f"{field:<15}{level:<17}" in text
    assert f"{LevelParams(0.9, 0.00004).weight:+9.2f}" in text
