"""Clerk search: free text and structured fields, typos, accents, order, partial input."""

from dataclasses import replace
from datetime import date

import pytest
from django.core.exceptions import ValidationError

from patients.codes import LinkType
from patients.data import IdentifierData
from patients.models import Link, Patient
from patients.services import delete_patient, register_patient
from search.indexing import reindex_patient
from search.queries import search_patients
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(clerk, django_capture_on_commit_callbacks):
    def add(key, **kwargs):
        return key, register_patient(data=patient_data(**kwargs), actor=clerk)

    # Run the on-commit hooks too: they fill the name vocabulary of the fuzzy pass.
    with django_capture_on_commit_callbacks(execute=True):
        return dict(
        [
            add("john", family="Smith", given=("John",), mrn="123456", phone="+1 617 555 0100"),
            add(
                "jon", family="Smyth", given=("Jon",), birth_date=date(1975, 6, 7), mrn="2",
                phone="+1 617 555 0199",
            ),
            add(
                "jane", family="Smith", given=("Jane",), gender="female", birth_date=date(1980, 3, 4),
                mrn="3", phone=None, email="jane.smith@example.org",
            ),
            add(
                "muller", family="Müller", given=("Jürgen",), birth_date=date(1962, 11, 30), mrn="4",
                phone="+44 20 7946 0958", postal_code="SW1A 1AA",
            ),
            add(
                "garcia", family="García Márquez", given=("María", "José"), gender="female",
                birth_date=date(1990, 1, 15), mrn="5", phone=None,
            ),
            add(
                "brown", family="Brown", given=("Robert",), birth_date=date(1955, 12, 1), mrn="6",
                phone=None,
            ),
        ]
    )  # fmt: skip


def ids(result):
    return [hit.patient_id for hit in result.hits]


def first(result):
    assert result.hits, "nothing found"
    return result.hits[0].patient_id


@pytest.mark.parametrize(
    "text",
    [
        "john smith 1980-03-04",
        "jon smyth 1980-03-04",
        "smith, john 04/03/1980",
        "Smith John 4 March 1980",
        "jhon smiht 1980-03-04",
        "SMITH, JOHN",
    ],
)
def test_free_text_finds_john_smith_first(people, text):
    assert first(search_patients(text=text)) == people["john"].pk


def test_identifier_in_free_text_is_an_exact_hit_ranked_first(people):
    result = search_patients(text="MRN 123456")
    assert ids(result) == [people["john"].pk]
    assert result.hits[0].matched == ("identifier",)


def test_phone_in_free_text_matches_the_suffix(people):
    assert ids(search_patients(text="+1 555 0100")) == [people["john"].pk]
    assert ids(search_patients(text="(617) 555-0199")) == [people["jon"].pk]


def test_accents_do_not_matter_either_way(people):
    assert first(search_patients(text="jurgen muller")) == people["muller"].pk
    assert first(search_patients(text="Jürgen Müller")) == people["muller"].pk
    assert first(search_patients(text="maria garcia marquez")) == people["garcia"].pk


def test_reordered_and_partial_names(people):
    assert first(search_patients(text="marquez maria")) == people["garcia"].pk
    assert first(search_patients(text="rob bro")) == people["brown"].pk
    assert ids(search_patients(text="smi joh 1980")) == [people["john"].pk]
    assert ids(search_patients(text="smyt 1975")) == [people["jon"].pk]
    assert people["brown"].pk in ids(search_patients(text="brow"))


def test_name_typos_rank_the_closest_name_first(people):
    result = search_patients(text="jon smyth")
    assert ids(result)[0] == people["jon"].pk
    assert people["john"].pk in ids(result)


def test_a_typo_that_changes_the_sound_is_found_through_the_name_vocabulary(people):
    # "nuller" shares neither a prefix nor a sound key with "muller": the fuzzy pass
    # expands it to the nearest known name words.
    result = search_patients(text="jurgen nuller")
    assert first(result) == people["muller"].pk
    assert "name:similar" in result.hits[0].matched


def test_birth_date_narrows_a_common_name(people):
    result = search_patients(text="smith 1980-03-04")
    assert set(ids(result)) == {people["john"].pk, people["jane"].pk}
    assert set(ids(search_patients(name="smith", birth_date="1980-03-04", gender="female"))) == {
        people["jane"].pk
    }


def test_structured_fields(people):
    assert ids(search_patients(identifier=f"{MRN_SYSTEM}|4")) == [people["muller"].pk]
    assert ids(search_patients(identifier="4")) == [people["muller"].pk]
    assert ids(search_patients(email="JANE.SMITH@example.org")) == [people["jane"].pk]
    assert ids(search_patients(phone="020 7946 0958")) == [people["muller"].pk]
    assert ids(search_patients(postcode="sw1a1aa")) == [people["muller"].pk]
    assert ids(search_patients(name="Smyth, Jon", birth_date=date(1975, 6, 7))) == [people["jon"].pk]


def test_uk_postcode_and_email_in_free_text(people):
    assert ids(search_patients(text="muller SW1A 1AA")) == [people["muller"].pk]
    assert ids(search_patients(text="jane.smith@example.org")) == [people["jane"].pk]


def test_every_criterion_must_match(people):
    assert search_patients(text="brown 1980-03-04").hits == []
    assert search_patients(text="MRN 123456 1975").hits == []


def test_matched_explains_the_hit(people):
    hit = search_patients(text="smith, john 1980-03-04").hits[0]
    assert "name" in hit.matched and "birth_date" in hit.matched


def test_deleted_patients_are_not_found(people, steward):
    delete_patient(patient=people["brown"], actor=steward)
    assert search_patients(text="robert brown").hits == []
    assert search_patients(text="MRN 6").hits == []


def test_merged_away_patient_found_only_by_identifier(people, clerk):
    survivor = people["john"]
    duplicate = register_patient(
        data=replace(
            patient_data(mrn="dup-1", phone=None), identifiers=(IdentifierData(SSN_SYSTEM, "078-05-1120"),)
        ),
        actor=clerk,
    )
    Patient.all_objects.filter(pk=duplicate.pk).update(active=False)
    Link.objects.create(patient=duplicate, other=survivor, type=LinkType.REPLACED_BY)
    duplicate.refresh_from_db()
    reindex_patient(duplicate)
    assert duplicate.pk not in ids(search_patients(text="john smith 1980-03-04"))
    hit = search_patients(text="078-05-1120").hits[0]
    assert (hit.patient_id, hit.merged) == (duplicate.pk, True)
    assert ids(search_patients(text=str(duplicate.uuid))) == [duplicate.pk]


def test_paging_and_totals(people):
    page1 = search_patients(text="smith", limit=1)
    page2 = search_patients(text="smith", limit=1, offset=1)
    assert page1.total == page2.total >= 2
    assert page1.has_more and page1.total_exact
    assert ids(page1) != ids(page2)
    past_the_end = search_patients(text="smith", limit=1, offset=50)
    assert past_the_end.hits == [] and past_the_end.total == page1.total


def test_nothing_searchable_finds_nothing(people):
    assert search_patients(text="").total == 0
    assert search_patients(gender="male").hits == []
    assert search_patients(text="dob mrn").hits == []


@pytest.mark.parametrize(("field", "value"), [("birth_date", "31/31/1980"), ("phone", "12"), ("gender", "M")])
def test_unreadable_structured_values_raise_a_field_error(people, field, value):
    with pytest.raises(ValidationError) as exc:
        search_patients(**{field: value})
    assert field in exc.value.message_dict


def test_hostile_input_is_only_data(people):
    for text in ["'; DROP TABLE search_patientindex; --", "smith & | ! :* ()", "%%", "\x00"]:
        search_patients(text=text)
    assert search_patients(text="smith").total >= 2
