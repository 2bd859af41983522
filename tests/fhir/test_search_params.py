"""Reading FHIR search parameters (pure: no database)."""

from datetime import UTC, date, datetime, timedelta, timezone
from uuid import UUID

import pytest

from fhir_api.search_params import (
    MAX_COUNT,
    SUBSETTED,
    DateCriterion,
    OfType,
    SearchParamError,
    SortKey,
    Token,
    parse_date,
    parse_search,
    split_unescaped,
    subset_resource,
)


def parse(query: str, **kwargs):
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return parse_search(pairs, **kwargs)


def one(query: str):
    (clause,) = parse(query).clauses
    return clause


@pytest.mark.parametrize(
    ("value", "prefix", "start", "end"),
    [
        ("1980", "eq", date(1980, 1, 1), date(1981, 1, 1)),
        ("1980-02", "eq", date(1980, 2, 1), date(1980, 3, 1)),  # leap year: Feb has 29 days
        ("1980-12", "eq", date(1980, 12, 1), date(1981, 1, 1)),
        ("1980-03-04", "eq", date(1980, 3, 4), date(1980, 3, 5)),
        ("ge1980-03-04", "ge", date(1980, 3, 4), date(1980, 3, 5)),
        ("lt1980", "lt", date(1980, 1, 1), date(1981, 1, 1)),
        ("sa1980-03", "sa", date(1980, 3, 1), date(1980, 4, 1)),
        ("eb1980-03", "eb", date(1980, 3, 1), date(1980, 4, 1)),
        ("ne1980", "ne", date(1980, 1, 1), date(1981, 1, 1)),
        ("ap1980", "ap", date(1980, 1, 1), date(1981, 1, 1)),
    ],
)
def test_partial_dates_are_ranges(value, prefix, start, end):
    assert parse_date("birthdate", value, with_time=False) == DateCriterion(prefix, start, end)


def test_instants_are_aware_ranges_at_their_precision():
    day = parse_date("_lastUpdated", "2024-05-06", with_time=True)
    assert (day.start, day.end) == (datetime(2024, 5, 6, tzinfo=UTC), datetime(2024, 5, 7, tzinfo=UTC))
    second = parse_date("_lastUpdated", "gt2024-05-06T10:20:30+02:00", with_time=True)
    assert second.prefix == "gt"
    assert second.start == datetime(2024, 5, 6, 8, 20, 30, tzinfo=UTC)
    assert second.end - second.start == timedelta(seconds=1)
    minute = parse_date("_lastUpdated", "2024-05-06T10:20Z", with_time=True)
    assert minute.end - minute.start == timedelta(minutes=1)
    millis = parse_date("_lastUpdated", "2024-05-06T10:20:30.125Z", with_time=True)
    assert millis.start.microsecond == 125000 and millis.end - millis.start == timedelta(milliseconds=1)
    assert second.start.tzinfo is not None and second.start.utcoffset() == timezone(
        timedelta(hours=2)
    ).utcoffset(None)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("xx1980", "unknown prefix 'xx'"),
        ("1980-13", "not a valid date"),
        ("1980-02-30", "not a valid date"),
        ("80-03-04", "not a FHIR date"),
        ("04/03/1980", "not a FHIR date"),
        ("1980-03-04T10:00:00Z", "no time"),  # a birth date has day precision
        ("", "not a FHIR date"),
    ],
)
def test_bad_birthdates_are_refused_naming_the_parameter(value, fragment):
    with pytest.raises(SearchParamError) as caught:
        parse_date("birthdate", value, with_time=False)
    assert caught.value.param == "birthdate"
    assert fragment in caught.value.message


def test_comma_is_or_and_repetition_is_and():
    request = parse("family=Smith,Jones&family=Sm&given=John")
    assert [(c.param, c.values) for c in request.clauses] == [
        ("family", ("Smith", "Jones")),
        ("family", ("Sm",)),
        ("given", ("John",)),
    ]


def test_escaped_commas_and_pipes_are_literal():
    assert split_unescaped(r"a\,b,c", ",") == [r"a\,b", "c"]
    assert one(r"family=O\,Brien").values == ("O,Brien",)
    assert one(r"identifier=urn:x|a\|b").values == (Token("urn:x", "a|b"),)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("urn:oid:1.2|77", Token("urn:oid:1.2", "77")),
        ("|77", Token("", "77")),
        ("urn:oid:1.2|", Token("urn:oid:1.2", "")),
        ("77", Token(None, "77")),
    ],
)
def test_identifier_token_forms(value, token):
    assert one(f"identifier={value}").values == (token,)


def test_identifier_of_type_and_text():
    clause = one("identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|77")
    assert clause.values == (OfType("MR", "77"),)
    assert one("identifier:text=medical record").values == ("MR",)
    with pytest.raises(SearchParamError):
        one("identifier:of-type=MR|77")


def test_gender_codes_are_validated():
    assert one("gender=female,http://hl7.org/fhir/administrative-gender|male").values == ("female", "male")
    with pytest.raises(SearchParamError, match="unknown code 'F'"):
        one("gender=F")
    with pytest.raises(SearchParamError, match="code system"):
        one("gender=http://example.org|male")
    assert one("gender:text=fem").values == ("female",)


def test_active_and_missing_take_booleans():
    assert one("active=true").values == (True,)
    assert one("birthdate:missing=false").values == (False,)
    with pytest.raises(SearchParamError, match="not true or false"):
        one("active=yes")
    with pytest.raises(SearchParamError) as caught:
        one("family:missing=maybe")
    assert caught.value.param == "family:missing"


def test_ids_and_references_that_cannot_name_a_patient_match_nothing():
    uuid = "3f2b7c1e-0000-4000-8000-000000000001"
    assert one(f"_id={uuid}").values == (UUID(uuid),)
    assert one("_id=not-a-uuid").values == (None,)
    assert one(f"link=Patient/{uuid}").values == (UUID(uuid),)
    assert one(f"link=https://mpi.example.org/fhir/Patient/{uuid}").values == (UUID(uuid),)
    assert one(f"link:Patient={uuid}").values == (UUID(uuid),)
    assert one(f"link=RelatedPerson/{uuid}").values == (None,)


@pytest.mark.parametrize(
    "query",
    ["family:sounds=Smith", "birthdate:exact=1980", "gender:contains=ma", "_id:missing=true", "name:text=x"],
)
def test_unsupported_modifiers_are_errors(query):
    with pytest.raises(SearchParamError) as caught:
        parse(query)
    assert caught.value.code == "not-supported"
    assert caught.value.param == query.split("=")[0]


def test_unknown_parameters_are_ignored_leniently_and_refused_strictly():
    request = parse("family=Smith&shoe-size=42&_include=Patient:link&_include=Patient:organization")
    assert request.ignored == ("shoe-size", "_include=Patient:link")
    assert request.includes == ("Patient:organization",)
    assert len(request.notes) == 2
    with pytest.raises(SearchParamError) as caught:
        parse("family=Smith&shoe-size=42", strict=True)
    assert caught.value.param == "shoe-size"


def test_empty_values_are_ignored():
    assert parse("family=&given=,&birthdate=").clauses == ()


def test_result_parameters():
    request = parse("_count=5&_offset=10&_sort=family,-birthdate&_total=none&_elements=name,gender")
    assert (request.count, request.offset, request.total) == (5, 10, "none")
    assert request.sort == (SortKey("family"), SortKey("birthdate", descending=True))
    assert request.elements == ("name", "gender")
    assert parse("").count == 20 and parse("").total == "accurate"


def test_count_is_bounded():
    request = parse("_count=1000")
    assert request.count == MAX_COUNT
    assert any("maximum" in note for note in request.notes)
    assert parse("_count=0").count == 0


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("_count=abc", "_count"),
        ("_count=-1", "_count"),
        ("_count=1&_count=2", "_count"),
        ("_offset=x", "_offset"),
        ("_sort=shoe", "_sort"),
        ("_total=maybe", "_total"),
        ("_summary=everything", "_summary"),
        ("_elements=shoe", "_elements"),
        ("_summary=true&_elements=name", "_elements"),
    ],
)
def test_bad_result_parameters_are_errors(query, param):
    with pytest.raises(SearchParamError) as caught:
        parse(query)
    assert caught.value.param == param


def test_link_params_keep_criteria_and_drop_ignored_ones():
    request = parse("family=Smith,Jones&shoe=1&_sort=-birthdate&_count=2&_offset=4")
    assert request.link_params() == [
        ("family", "Smith,Jones"),
        ("_sort", "-birthdate"),
        ("_count", "2"),
        ("_offset", "4"),
    ]
    assert request.link_params(offset=0)[-1] == ("_count", "2")


RESOURCE = {
    "resourceType": "Patient",
    "id": "x",
    "meta": {"versionId": "1"},
    "identifier": [{"system": "s", "value": "v"}],
    "name": [{"family": "Smith"}],
    "gender": "male",
    "birthDate": "1980-03-04",
    "deceasedBoolean": True,
    "maritalStatus": {"text": "M"},
}


def test_elements_keep_the_named_ones_and_tag_subsetted():
    subset = subset_resource(RESOURCE, elements=("name", "deceased"))
    assert set(subset) == {"resourceType", "id", "meta", "name", "deceasedBoolean"}
    assert subset["meta"]["tag"] == [SUBSETTED]
    assert subset["meta"]["versionId"] == "1"
    assert "tag" not in RESOURCE["meta"]  # the input is not changed


def test_summary_true_keeps_summary_elements():
    subset = subset_resource(RESOURCE, summary="true")
    assert "maritalStatus" not in subset and "deceasedBoolean" in subset and "identifier" in subset
    assert subset["meta"]["tag"] == [SUBSETTED]
    assert subset_resource(RESOURCE, summary="data") == RESOURCE  # no narrative to drop
