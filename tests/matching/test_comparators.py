"""Comparison levels, field by field: pure tests, no database."""

from datetime import date

import pytest

from matching import levels as L
from matching.comparators import compare_prepared, compare_records
from matching.normalize import email_key, fold, fold_keys
from matching.placeholders import is_placeholder_number, is_placeholder_phone
from matching.prepare import family_tf_key, given_tf_key, prepare
from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from tests.factories import MRN_SYSTEM, SSN_SYSTEM


def person(
    family: str = "Smith",
    given: tuple[str, ...] = ("John",),
    *,
    birth_date: date | None = date(1980, 3, 4),
    gender: str = "male",
    names: tuple[NameData, ...] | None = None,
    address: AddressData | None = None,
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    identifiers: tuple[IdentifierData, ...] = (),
    **extra,
) -> PatientData:
    contacts = tuple(ContactData(system="phone", value=p) for p in phones) + tuple(
        ContactData(system="email", value=e) for e in emails
    )
    return PatientData(
        names=names if names is not None else (NameData(family=family, given=given),),
        addresses=(address,) if address else (),
        contacts=contacts,
        identifiers=identifiers,
        birth_date=birth_date,
        gender=gender,
        **extra,
    )


def level(field: str, a: PatientData, b: PatientData) -> str:
    return {c.field: c.level for c in compare_records(a, b)}[field]


def comparison(field: str, a: PatientData, b: PatientData):
    return next(c for c in compare_records(a, b) if c.field == field)


# -- normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "folded"),
    [
        ("O'Brien", "obrien"),
        ("o brien", "obrien"),
        ("  SMITH-Jones ", "smithjones"),
        ("Müller", "muller"),
        ("Zoë", "zoe"),
        ("Łukasz", "lukasz"),
        ("Straße", "strasse"),
        ("", ""),
    ],
)
def test_fold_ignores_accents_case_punctuation_and_spacing(value, folded):
    assert fold(value) == folded


def test_fold_keys_include_umlauts_written_out():
    assert fold_keys("Müller") == {"muller", "mueller"}


def test_email_key_drops_subaddress_and_gmail_dots():
    assert email_key("J.Smith+clinic@GoogleMail.com") == ("jsmith", "gmail.com")
    assert email_key("j.smith@example.org") == ("j.smith", "example.org")


# -- family name -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("O'Brien", "OBrien", L.EXACT),
        ("O'Brien", "o brien", L.EXACT),
        ("Müller", "Muller", L.EXACT),
        ("Müller", "Mueller", L.EXACT),
        ("GARCIA", "garcia", L.EXACT),
        ("García-López", "Garcia Lopez", L.EXACT),
        ("Johnson", "Jonson", L.JW_HIGH),
        ("Thompson", "Thomson", L.JW_HIGH),
        ("Smith", "Smyth", L.PHONETIC),
        ("Garcia-Lopez", "Garcia", L.PARTIAL),
        ("Lopez Garcia", "Garcia", L.PARTIAL),
        ("de la Cruz", "Cruz", L.PARTIAL),
        ("Van der Berg", "Vandenberg", L.JW_HIGH),
        ("de la Cruz", "de Souza", L.DISAGREE),
        ("Smith", "Jones", L.DISAGREE),
    ],
)
def test_family_name_levels(a, b, expected):
    assert level(L.FAMILY, person(family=a), person(family=b)) == expected
    assert level(L.FAMILY, person(family=b), person(family=a)) == expected


def test_family_name_missing_on_one_side_is_missing():
    assert level(L.FAMILY, person(family=""), person()) == L.MISSING


@pytest.mark.parametrize("placeholder", ["Unknown", "UNK", "Test", "Anonymous", "XXX"])
def test_placeholder_family_name_is_its_own_level(placeholder):
    assert level(L.FAMILY, person(family=placeholder), person(family=placeholder)) == L.PLACEHOLDER


def test_best_family_name_pair_is_kept_and_shown():
    married = person(
        names=(
            NameData(family="Jones", given=("Mary",), use="official"),
            NameData(family="Smith", given=("Mary",), use="maiden"),
        )
    )
    c = comparison(L.FAMILY, married, person(family="Smith", given=("Mary",)))
    assert (c.level, c.value_a, c.value_b) == (L.EXACT, "Smith", "Smith")


def test_exact_name_agreement_carries_the_term_frequency_key_the_index_counts():
    a = person(family="O'Brien Jr", given=("Mary Ann", "Louise"))
    b = person(family="OBRIEN", given=("mary",))
    assert comparison(L.FAMILY, a, b).tf_key == family_tf_key("O'Brien Jr") == "obrien"
    assert comparison(L.GIVEN, a, b).tf_key == given_tf_key(("Mary Ann", "Louise")) == "mary"
    assert comparison(L.FAMILY, person(family="Smith"), person(family="Smyth")).tf_key is None


# -- given name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (("John",), ("JOHN",), L.EXACT),
        (("Jean-Luc",), ("Jean Luc",), L.EXACT),
        (("Mary", "Ann"), ("Maryann",), L.EXACT),
        (("Jürgen",), ("Juergen",), L.EXACT),
        (("José",), ("Jose",), L.EXACT),
        (("William",), ("Bill",), L.NICKNAME),
        (("Bill",), ("Billy",), L.NICKNAME),
        (("Margaret",), ("Peggy",), L.NICKNAME),
        (("Robert",), ("Bob",), L.NICKNAME),
        # From the supplement to the nicknames list (patients/nicknames-supplement.csv).
        (("William",), ("Liam",), L.NICKNAME),
        (("Liam",), ("Bill",), L.NICKNAME),  # both nicknames of William
        (("Katherine",), ("Katie",), L.NICKNAME),
        (("Francisco",), ("Paco",), L.NICKNAME),
        (("José",), ("Pepe",), L.NICKNAME),
        (("Jesús",), ("Chuy",), L.NICKNAME),
        (("Guadalupe",), ("Lupe",), L.NICKNAME),
        (("Christopher",), ("Christoper",), L.JW_HIGH),
        (("John", "Paul"), ("Paul",), L.MIDDLE),
        (("J",), ("John",), L.INITIAL),
        (("J.",), ("John",), L.INITIAL),
        (("J",), ("J",), L.INITIAL),
        (("Anna",), ("Anita",), L.JW_MID),
        (("John",), ("Mary",), L.DISAGREE),
        (("K",), ("John",), L.DISAGREE),
    ],
)
def test_given_name_levels(a, b, expected):
    assert level(L.GIVEN, person(given=a), person(given=b)) == expected
    assert level(L.GIVEN, person(given=b), person(given=a)) == expected


@pytest.mark.parametrize(
    "placeholder",
    [("Baby Boy",), ("Baby", "Girl"), ("Unknown",), ("Baby A",), ("Twin", "2"), ("NN",), ("Test",)],
)
def test_placeholder_given_names_are_their_own_level(placeholder):
    assert level(L.GIVEN, person(given=placeholder), person(given=("John",))) == L.PLACEHOLDER


@pytest.mark.parametrize(
    ("family", "given"), [("Doe", ("John",)), ("Doe", ("Jane",)), ("Patient", ("Test",))]
)
def test_placeholder_full_names_neutralise_both_parts(family, given):
    a, b = person(family=family, given=given), person(family=family, given=given)
    assert (level(L.FAMILY, a, b), level(L.GIVEN, a, b)) == (L.PLACEHOLDER, L.PLACEHOLDER)


def test_doe_alone_is_a_real_family_name():
    anna = person(family="Doe", given=("Anna",))
    assert level(L.FAMILY, anna, anna) == L.EXACT


def test_swapped_given_and_family_is_one_level_not_two_disagreements():
    a, b = person(family="Smith", given=("John",)), person(family="John", given=("Smith",))
    assert (level(L.FAMILY, a, b), level(L.GIVEN, a, b)) == (L.SWAPPED, L.SWAPPED)
    # A typo on top of the swap still counts.
    assert level(L.FAMILY, a, person(family="Jhon", given=("Smith",))) == L.SWAPPED


def test_swap_is_not_reported_when_names_agree_directly():
    a = person(family="Thomas", given=("James",))
    assert level(L.FAMILY, a, person(family="Thomas", given=("James",))) == L.EXACT


def test_free_text_name_is_split_into_given_and_family():
    a = person(names=(NameData(text="John Smith"),))
    assert (level(L.FAMILY, a, person()), level(L.GIVEN, a, person())) == (L.EXACT, L.EXACT)


# -- birth date, gender ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (date(1980, 3, 4), date(1980, 3, 4), L.EXACT),
        (date(1980, 3, 4), date(1980, 4, 3), L.TRANSPOSED),
        (date(1980, 3, 4), date(1981, 3, 4), L.YEAR_OFF_BY_ONE),
        (date(1980, 3, 4), date(1979, 3, 4), L.YEAR_OFF_BY_ONE),
        (date(1980, 3, 4), date(1980, 3, 14), L.ONE_OFF),
        (date(1980, 3, 4), date(1980, 8, 4), L.ONE_OFF),
        (date(1980, 3, 4), date(1908, 3, 4), L.ONE_OFF),
        (date(1980, 3, 4), date(1975, 11, 23), L.DISAGREE),
        (date(1980, 3, 4), None, L.MISSING),
        (date(1900, 1, 1), date(1900, 1, 1), L.PLACEHOLDER),
    ],
)
def test_birth_date_levels(a, b, expected):
    assert level(L.BIRTH_DATE, person(birth_date=a), person(birth_date=b)) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("male", "male", L.EXACT),
        ("female", "male", L.DISAGREE),
        ("unknown", "male", L.MISSING),
        ("", "female", L.MISSING),
    ],
)
def test_gender_levels(a, b, expected):
    assert level(L.GENDER, person(gender=a), person(gender=b)) == expected


# -- address ---------------------------------------------------------------------------


def at(line: str = "", city: str = "", postal_code: str = "") -> AddressData:
    return AddressData(line=(line,) if line else (), city=city, postal_code=postal_code)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("02134", "02134", L.EXACT),
        ("02134", "02134-1234", L.EXACT),
        ("SW1A 1AA", "sw1a1aa", L.EXACT),
        ("02134", "02143", L.TYPO),
        ("02134", "02199", L.PARTIAL),
        ("02134", "90210", L.DISAGREE),
        ("00000", "00000", L.PLACEHOLDER),
        ("99999", "02134", L.PLACEHOLDER),
    ],
)
def test_postcode_levels(a, b, expected):
    assert level(L.POSTCODE, person(address=at(postal_code=a)), person(address=at(postal_code=b))) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1 Main Street", "1 main st.", L.EXACT),
        ("Apt 2, 12 Main St", "12 Main St Apt 2", L.EXACT),
        ("12 Main St", "12 Mian St", L.JW_HIGH),
        ("37 Upton Street, Brentwood Village", "37 Brentwood Village, Upton Street", L.EXACT),
        ("37 Upton Street, Brentwood Village", "37 Brentwood Vilage, Upton St", L.JW_HIGH),
        ("Flat 3, 12 High Road", "12 High Rd", L.PARTIAL),
        # A typo in the street type escapes the abbreviation table: still one typo.
        ("18 Aspinall Street", "18 Aspinall Rtreet", L.JW_HIGH),
        ("70 Hurry Place, Tintagel", "70 Hurry Nplace, Tintagel", L.JW_HIGH),
        ("7 Dixon Drive", "7 Dixonddrive", L.JW_HIGH),
        # ... and a neighbour's mistyped line is still only a neighbour.
        ("12 Main Street", "14 Main Stret", L.JW_MID),
        # Neighbours are not a near-exact agreement, however close the strings.
        ("12 Main St", "14 Main St", L.JW_MID),
        ("12 Main St", "7 Oak Avenue", L.DISAGREE),
        # Homeless patients share these; they say nothing about who is who.
        ("Homeless", "HOMELESS", L.PLACEHOLDER),
        ("No fixed abode", "No Fixed Abode", L.PLACEHOLDER),
        ("Unknown", "12 Main St", L.PLACEHOLDER),
    ],
)
def test_address_line_levels(a, b, expected):
    assert level(L.ADDRESS, person(address=at(line=a)), person(address=at(line=b))) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Montréal", "MONTREAL", L.EXACT),
        ("Boston", "Bostn", L.JW_HIGH),
        ("Boston", "Springfield", L.DISAGREE),
    ],
)
def test_city_levels(a, b, expected):
    assert level(L.CITY, person(address=at(city=a)), person(address=at(city=b))) == expected


def test_city_is_implied_when_the_postcode_agrees_exactly():
    a = person(address=at(city="Boston", postal_code="02134"))
    b = person(address=at(city="Allston", postal_code="02134"))
    assert level(L.CITY, a, b) == L.IMPLIED


# -- phone, email ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("+1 617 555 0100", "(617) 555-0100", L.EXACT),
        ("+16175550100", "+16175550100", L.EXACT),
        ("+1 617 555 0100", "+1 508 555 0100", L.LAST7),
        ("+1 617 555 0100", "+1 617 555 0199", L.DISAGREE),
        ("000-000-0000", "000-000-0000", L.PLACEHOLDER),
        ("555-0000", "555-0000", L.PLACEHOLDER),
        ("123-456-7890", "123-456-7890", L.PLACEHOLDER),
    ],
)
def test_phone_levels(a, b, expected):
    assert level(L.PHONE, person(phones=(a,)), person(phones=(b,))) == expected


def test_placeholder_phone_is_ignored_when_a_real_one_is_there():
    a = person(phones=("000-000-0000", "+1 617 555 0100"))
    assert level(L.PHONE, a, person(phones=("617-555-0100",))) == L.EXACT
    assert level(L.PHONE, a, person()) == L.MISSING


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("John.Smith@Example.org", "john.smith@example.org", L.EXACT),
        ("john+er@example.org", "john@example.org", L.EXACT),
        ("john.smith@gmail.com", "johnsmith@googlemail.com", L.EXACT),
        ("john.smith@example.org", "john.smith@work.example", L.LOCAL_CLOSE),
        ("john.smith@example.org", "john.smyth@example.org", L.LOCAL_CLOSE),
        ("john.smith@example.org", "mary@example.org", L.DISAGREE),
        ("noemail@gmail.com", "noemail@gmail.com", L.PLACEHOLDER),
        ("none@none.com", "john@example.org", L.PLACEHOLDER),
        ("no.email@example.org", "no.email@example.org", L.PLACEHOLDER),
    ],
)
def test_email_levels(a, b, expected):
    assert level(L.EMAIL, person(emails=(a,)), person(emails=(b,))) == expected


# -- identifiers -----------------------------------------------------------------------


def ssn(value: str, **kw) -> IdentifierData:
    return IdentifierData(system=SSN_SYSTEM, value=value, type="SS", **kw)


def mrn(value: str) -> IdentifierData:
    return IdentifierData(system=MRN_SYSTEM, value=value, type="MR")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((ssn("123-45-6780"),), (ssn("123456780"),), L.EXACT),
        ((mrn("4711"),), (mrn("4711"), ssn("123-45-6780")), L.EXACT),
        ((ssn("123-45-6780"),), (ssn("123-45-6708"),), L.CLOSE),
        ((ssn("123-45-6780"),), (ssn("987-65-4320"),), L.CONFLICT),
        # A second MRN from the same hospital is the duplicate we look for, not evidence.
        ((mrn("4711"),), (mrn("4712"),), L.UNRELATED),
        ((mrn("4711"),), (IdentifierData(system="urn:oid:9.9", value="4711"),), L.UNRELATED),
        ((ssn("123-45-6780", use="old"),), (ssn("987-65-4320"),), L.UNRELATED),
        ((ssn("000-00-0000"),), (ssn("000-00-0000"),), L.PLACEHOLDER),
        ((ssn("123456789"),), (ssn("987-65-4320"),), L.PLACEHOLDER),
        ((ssn("123-45-6780"),), (), L.MISSING),
    ],
)
def test_identifier_levels(a, b, expected):
    assert level(L.IDENTIFIER, person(identifiers=a), person(identifiers=b)) == expected


def test_identifier_of_a_type_that_is_one_per_person_conflicts_within_its_system():
    a = person(identifiers=(IdentifierData(system="urn:oid:1.2.3", value="AB123456", type="NI"),))
    b = person(identifiers=(IdentifierData(system="urn:oid:1.2.3", value="XY987654", type="NI"),))
    assert level(L.IDENTIFIER, a, b) == L.CONFLICT


@pytest.mark.parametrize(
    "value", ["000000000", "999-99-9999", "123456789", "0123456789", "987654321", "unknown", "078-05-1120"]
)
def test_placeholder_identifier_values(value):
    assert is_placeholder_number(fold(value))


@pytest.mark.parametrize("value", ["77", "4711", "123-45-6780", "A1234567"])
def test_real_identifier_values_are_not_placeholders(value):
    assert not is_placeholder_number(fold(value))


@pytest.mark.parametrize("digits", ["16175550100", "4402079460000", "6174441234"])
def test_real_phone_numbers_are_not_placeholders(digits):
    assert not is_placeholder_phone(digits)


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("12345", True),
        ("7890123", True),  # runs wrap from 9 to 0
        ("3210987", True),
        ("1234", False),  # too short for a run
        ("12346", False),
        ("1234567890" * 10, True),  # longer than the run table: checked digit by digit
        ("1234567890" * 10 + "2", False),
        ("\u0661\u0662\u0663\u0664\u0665", True),  # Arabic-Indic 12345
        ("\u0661\u0662\u0663\u0664\u0666", False),
        ("²³⁴⁵⁶", False),  # digits to str.isdigit(), not numbers to int(): not a run, no crash
    ],
)
def test_runs_of_consecutive_digits_are_placeholders(value, placeholder):
    assert is_placeholder_number(value) is placeholder


# -- preparing: one object per distinct name ------------------------------------------


def test_records_with_the_same_name_share_its_prepared_parts():
    shared: dict = {}
    a = prepare(person("Okonkwo", ("Adaeze",)), shared=shared)
    b = prepare(person("Okonkwo", ("Adaeze",), gender="female"), shared=shared)
    assert a.families[0] is b.families[0] and a.givens[0] is b.givens[0]
    assert a == prepare(person("Okonkwo", ("Adaeze",)))  # the same as prepared alone


def test_a_placeholder_full_name_does_not_mark_its_shared_parts():
    shared: dict = {}
    doe = prepare(person("Doe", ("John",)), shared=shared)
    assert doe.names[0].family.placeholder and doe.names[0].given.placeholder
    assert not doe.families and not doe.givens
    # The same "Doe" and "John" in real names afterwards are not placeholders.
    mary_doe = prepare(person("Doe", ("Mary",)), shared=shared)
    john_roe = prepare(person("Roe", ("John",)), shared=shared)
    assert mary_doe.families[0].key == "doe" and not mary_doe.families[0].placeholder
    assert john_roe.givens[0].first == "john" and not john_roe.givens[0].placeholder
    assert prepare(person("Doe", ("John",)), shared=shared) == doe == prepare(person("Doe", ("John",)))


# -- multiple birth, generation, the whole comparison ----------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [(1, 1, L.SAME), (1, 2, L.DIFFERS), (1, None, L.MISSING)])
def test_multiple_birth_order_levels(a, b, expected):
    a_rec = person(multiple_birth=True, multiple_birth_order=a)
    b_rec = person(multiple_birth=b is not None, multiple_birth_order=b)
    assert level(L.MULTIPLE_BIRTH, a_rec, b_rec) == expected


def test_generational_suffixes_jr_and_sr_differ():
    jr = person(names=(NameData(family="Smith", given=("John",), suffix=("Jr.",)),))
    sr = person(names=(NameData(family="Smith", given=("John",), suffix=("Senior",)),))
    assert level(L.GENERATION, jr, sr) == L.DIFFERS
    assert level(L.GENERATION, jr, jr) == L.SAME
    assert level(L.GENERATION, jr, person()) == L.MISSING


def test_generational_suffix_typed_into_the_family_name_is_taken_out():
    jr, sr = person(family="Smith Jr."), person(family="SMITH, SR")
    assert level(L.FAMILY, jr, person()) == L.EXACT
    assert (level(L.FAMILY, jr, sr), level(L.GENERATION, jr, sr)) == (L.EXACT, L.DIFFERS)
    third = person(given=("John",), family="Smith 3rd")
    assert level(L.GENERATION, person(given=("John III",)), third) == L.SAME


def test_every_field_is_compared_once_in_order_with_a_known_level():
    comparisons = compare_records(person(), PatientData())
    assert tuple(c.field for c in comparisons) == L.FIELDS
    for c in comparisons:
        assert c.level in L.all_levels(c.field)
    assert {c.level for c in comparisons} == {L.MISSING}


def test_prepared_records_compare_like_raw_ones():
    a = person(phones=("+1 617 555 0100",), address=at("1 Main St", "Boston", "02134"))
    b = person(family="Smyth", given=("Jon",), address=at("1 Main Street", "Boston", "02134"))
    assert compare_prepared(prepare(a), prepare(b)) == compare_records(a, b)
