"""Reading a clerk's free text: pure, no database."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from search.parsing import (
    BIRTH_DATE,
    BIRTH_YEAR,
    EMAIL,
    IDENTIFIER_KEY,
    IDENTIFIER_VALUE,
    PHONE,
    PHONE_SUFFIX,
    POSTCODE,
    UUID_KIND,
    build_query,
    parse_date,
    parse_free_text,
)

TODAY = date(2025, 6, 1)


def kinds(query):
    return [sorted({(a.kind, a.value) for a in c.alternatives}) for c in query.criteria]


@pytest.mark.parametrize(
    ("text", "readings"),
    [
        ("1980-03-04", (date(1980, 3, 4),)),
        ("04/03/1980", (date(1980, 3, 4), date(1980, 4, 3))),
        ("13/03/1980", (date(1980, 3, 13),)),
        ("4.3.80", (date(1980, 3, 4), date(1980, 4, 3))),
        ("4 March 1980", (date(1980, 3, 4),)),
        ("Mar 4th, 1980", (date(1980, 3, 4),)),
        ("31/02/1980", ()),
        ("2030-01-01", ()),  # in the future
    ],
)
def test_parse_date_keeps_every_reading(text, readings):
    assert parse_date(text, today=TODAY) == readings


def test_name_and_date():
    query = parse_free_text("jon smyth 1980-03-04", today=TODAY)
    assert query.name_words == ("jon", "smyth")
    assert query.family_words == ()
    assert kinds(query) == [[(BIRTH_DATE, date(1980, 3, 4))]]


def test_comma_marks_the_family_name():
    query = parse_free_text("Smith, John 04/03/1980", today=TODAY)
    assert query.name_words == ("smith", "john")
    assert query.family_words == ("smith",)
    assert kinds(query) == [[(BIRTH_DATE, date(1980, 3, 4)), (BIRTH_DATE, date(1980, 4, 3))]]


def test_labelled_identifier_is_an_identifier_or_a_postcode():
    query = parse_free_text("MRN 123456", today=TODAY)
    assert query.name_words == ()
    assert kinds(query) == [[(IDENTIFIER_VALUE, "123456"), (POSTCODE, "123456")]]


def test_phone_with_spaces_is_one_phone():
    query = parse_free_text("+1 555 0100", today=TODAY)
    assert kinds(query) == [
        [(IDENTIFIER_VALUE, "+1 555 0100"), (PHONE, "+15550100"), (PHONE_SUFFIX, "5550100")]
    ]


def test_identifier_and_year_are_not_glued_into_a_phone():
    query = parse_free_text("123456 1980", today=TODAY)
    assert [c.text for c in query.criteria] == ["123456", "1980"]
    assert (BIRTH_YEAR, 1980) in kinds(query)[1]


def test_accents_email_uuid_and_uk_postcode():
    query = parse_free_text(
        "Müller J.Muller@Example.org SW1A 1AA 3f2b6c9e-1c7a-4e7b-9a63-2b8d8e1f0a11", today=TODAY
    )
    assert query.name_words == ("muller",)
    assert kinds(query) == [
        [(UUID_KIND, "3f2b6c9e-1c7a-4e7b-9a63-2b8d8e1f0a11")],
        [(EMAIL, "j.muller@example.org")],
        [(POSTCODE, "SW1A1AA")],
    ]


def test_operators_and_punctuation_never_reach_the_query_words():
    query = parse_free_text("smith & | ! :* () '; drop", today=TODAY)
    assert query.name_words == ("smith", "drop")


def test_structured_fields():
    query = build_query(
        name="Smith, John", birth_date="04/03/1980", gender="Male", identifier="urn:oid:1.2|77",
        phone="617 555 0100", email=" A@B.org ", postcode="02134", today=TODAY,
    )  # fmt: skip
    assert query.name_words == ("smith", "john") and query.family_words == ("smith",)
    assert query.gender == "male"
    assert [c.alternatives[0].kind for c in query.criteria] == [
        BIRTH_DATE,
        IDENTIFIER_KEY,
        PHONE,
        EMAIL,
        POSTCODE,
    ]
    assert build_query(identifier="77").criteria[0].alternatives[0].kind == IDENTIFIER_VALUE


@pytest.mark.parametrize(
    ("field", "value"), [("birth_date", "yesterday"), ("phone", "12-34"), ("gender", "m")]
)
def test_unreadable_structured_values(field, value):
    with pytest.raises(ValidationError) as exc:
        build_query(**{field: value})
    assert list(exc.value.message_dict) == [field]


def test_nothing_searchable():
    assert parse_free_text("", today=TODAY).is_empty
    assert parse_free_text("dob: mrn#", today=TODAY).is_empty


@pytest.mark.parametrize("token", ["²²²²", "¹⁹⁸⁰", "①②③④"])
def test_digits_int_cannot_read_are_text_not_a_birth_year(token):
    # str.isdigit() accepts them and int() does not: this was a 500 in clerk search.
    query = parse_free_text(f"smith {token}", today=TODAY)
    assert BIRTH_YEAR not in {a.kind for c in query.criteria for a in c.alternatives}


def test_a_year_in_other_decimal_digits_is_a_birth_year():
    query = parse_free_text("smith ١٩٨٠", today=TODAY)  # Arabic-Indic 1980
    assert (BIRTH_YEAR, 1980) in {(a.kind, a.value) for c in query.criteria for a in c.alternatives}
