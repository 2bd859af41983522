"""The index row follows every write, in the writer's transaction."""

from dataclasses import replace
from datetime import date

import pytest
from django.db import transaction

from patients.codes import LinkType
from patients.data import ContactData, NameData
from patients.models import Link, Patient
from patients.services import (
    delete_patient,
    patient_to_data,
    register_patient,
    restore_patient,
    update_patient,
)
from search.indexing import index_values, load_index_values, reindex_patient
from search.models import NameWord, PatientIndex
from tests.factories import MRN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db


def row(patient: Patient) -> PatientIndex:
    return PatientIndex.objects.get(patient=patient)


def test_register_writes_a_normalised_index_row(clerk):
    data = patient_data(
        family="Müller-Lüdenscheidt",
        given=("Jürgen", "Karl"),
        email="J.Muller@Example.ORG",
        phone="(617) 555-0100",
        postal_code="sw1a 1aa",
    )
    patient = register_patient(data=data, actor=clerk)
    index = row(patient)
    assert index.display_name == "Jürgen Karl Müller-Lüdenscheidt"
    assert index.name_text == "jurgen karl muller ludenscheidt"
    assert index.family_names == ["ludenscheidt", "muller", "mullerludenscheidt"]
    assert index.given_names == ["jurgen", "karl"]
    assert index.birth_date == date(1980, 3, 4) and index.birth_year == 1980
    assert index.gender == "male"
    assert index.phones == ["+16175550100"]
    assert index.phone_suffixes == ["5550100"]
    assert index.emails == ["j.muller@example.org"]
    assert index.postcodes == ["SW1A1AA"]
    assert index.cities == ["boston"]
    assert index.identifier_keys == [f"{MRN_SYSTEM}|77"]
    assert index.identifier_values == ["77"]
    assert index.keyword_text == "77 y1980"  # the birth year meets names in the tsvector
    assert "y:1980" in index.phonetic_keys  # ... and sounds in the phonetic keys
    assert index.merged is False


def test_phonetic_keys_are_computed_without_accents(clerk):
    accented = row(register_patient(data=patient_data(family="Müller", mrn="1"), actor=clerk))
    plain = row(register_patient(data=patient_data(family="Muller", mrn="2"), actor=clerk))
    assert accented.phonetic_keys == plain.phonetic_keys
    assert "n:MALAR" in plain.phonetic_keys  # NYSIIS of "muller"; "Müller" would differ
    assert accented.block_keys == plain.block_keys
    assert "fy:m:MLR:1980" in plain.block_keys
    assert "di:1980-03-04:j" in plain.block_keys


def test_update_rewrites_the_row(clerk):
    patient = register_patient(data=patient_data(), actor=clerk)
    data = replace(
        patient_to_data(patient),
        names=(
            NameData(family="Jones", given=("Mary",)),
            NameData(family="Smith", given=("Mary",), use="maiden"),
        ),
        birth_date=date(1975, 1, 2),
        contacts=(ContactData(system="email", value="mary@example.org"),),
    )
    update_patient(patient=patient, data=data, expected_version=1, actor=clerk)
    index = row(patient)
    assert index.name_text == "mary jones smith"
    assert index.family_names == ["jones", "smith"]
    assert index.birth_year == 1975
    assert index.phones == []
    assert index.emails == ["mary@example.org"]


def test_an_update_reads_the_patient_once_for_its_index_row_and_its_matching(clerk):
    """The row is built from the data the update read back (sent with the signal, which
    matching uses too), and equals the row a rebuild makes: kept rows come back before
    new ones (by id), the primary name first, whatever order the update gave."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from search.indexing import INDEX_FIELDS

    patient = register_patient(data=patient_data(family="Smith", given=("John",)), actor=clerk)
    stored = patient_to_data(patient)
    data = replace(
        stored,
        names=(NameData(family="Smyth", given=("Jon",), use="old"), *stored.names),
        contacts=(ContactData(system="email", value="john@example.org"), *stored.contacts),
    )
    with CaptureQueriesContext(connection) as queries:
        update_patient(patient=patient, data=data, expected_version=1, actor=clerk)
    assert sum('"_names"' in q["sql"] for q in queries.captured_queries) == 1
    index = row(patient)
    rebuilt = load_index_values([patient.pk])[patient.pk]
    assert {f: getattr(index, f) for f in INDEX_FIELDS} == rebuilt
    assert index.display_name.startswith("John") and "smyth" in index.family_names


def test_soft_delete_drops_the_row_and_restore_brings_it_back(clerk, steward):
    patient = register_patient(data=patient_data(), actor=clerk)
    delete_patient(patient=patient, actor=steward)
    assert not PatientIndex.objects.filter(patient=patient).exists()
    restore_patient(patient=patient, actor=steward)
    assert row(patient).identifier_keys == [f"{MRN_SYSTEM}|77"]


def test_the_row_is_written_inside_the_writing_transaction(clerk):
    with pytest.raises(RuntimeError), transaction.atomic():
        register_patient(data=patient_data(mrn="rolled-back"), actor=clerk)
        assert PatientIndex.objects.filter(identifier_values__contains=["rolled-back"]).exists()
        raise RuntimeError("abort the registration")
    assert not PatientIndex.objects.exists()


def test_name_words_join_the_vocabulary_when_the_write_commits(clerk, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        register_patient(data=patient_data(family="Ó Súilleabháin"), actor=clerk)
    assert not NameWord.objects.filter(word="suilleabhain").exists()
    for callback in callbacks:
        callback()
    assert set(NameWord.objects.values_list("word", flat=True)) == {"john", "o", "suilleabhain"}


def test_merged_away_patient_is_flagged(clerk):
    survivor = register_patient(data=patient_data(mrn="1"), actor=clerk)
    duplicate = register_patient(data=patient_data(mrn="2"), actor=clerk)
    # What the merge service will do; until it exists, write its rows by hand.
    Patient.all_objects.filter(pk=duplicate.pk).update(active=False)
    Link.objects.create(patient=duplicate, other=survivor, type=LinkType.REPLACED_BY)
    duplicate.refresh_from_db()
    reindex_patient(duplicate)
    assert row(duplicate).merged is True
    assert row(survivor).merged is False


def test_inactive_patient_without_replaced_by_link_is_not_merged(clerk):
    patient = register_patient(data=replace(patient_data(), active=False), actor=clerk)
    assert row(patient).merged is False


def test_loaded_rows_equal_rows_built_from_registration_data(clerk):
    data = patient_data(family="O'Brien", given=("Seán",), email="sean@example.org")
    patient = register_patient(data=data, actor=clerk)
    from patients.data import clean_patient_data

    assert load_index_values([patient.pk])[patient.pk] == index_values(clean_patient_data(data))


def test_text_only_name_is_indexed(clerk):
    patient = register_patient(
        data=replace(patient_data(), names=(NameData(text="Baby Girl Nguyen"),)), actor=clerk
    )
    index = row(patient)
    assert index.display_name == "Baby Girl Nguyen"
    assert index.family_names == ["nguyen"]
    assert index.given_names == ["baby", "girl"]
