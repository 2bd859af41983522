"""The matcher's copy of each patient in the search index (``PatientIndex.match_data``):
what scoring reads instead of five child tables per candidate. It must give exactly
the data the patient tables give, or a probe's scores would depend on where they
were read from."""

import json
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from matching.services import match_patient
from patients.data import (
    AddressData,
    ContactData,
    IdentifierData,
    LinkData,
    NameData,
    PatientData,
    data_from_json,
    data_to_json,
)
from patients.demo import generate_demo
from patients.queries import load_patients
from patients.services import delete_patient, register_patient, update_patient
from search.blocking import candidate_records
from search.maintenance import check_index
from search.models import PatientIndex
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, patient_data

RICH = PatientData(
    names=(
        NameData(
            family="Ñúñez-García", given=("José", "María"), prefix=("Dr",), use="official", primary=True
        ),
        NameData(family="Nunez", given=("Jose",), suffix=("Jr",), use="old", period_end=date(2001, 1, 2)),
        NameData(text="Pepe"),
    ),
    identifiers=(
        IdentifierData(system=MRN_SYSTEM, value="2", type="MR", period_start=date(2010, 5, 6)),
        IdentifierData(system=SSN_SYSTEM, value="123-45-6780", assigner="SSA", use="official"),
    ),
    addresses=(
        AddressData(line=("PO Box 9", "Unit 3"), city="Springfield", postal_code="01101", primary=True),
        AddressData(line=("1 Main St",), city="Boston", state="MA", country="US", use="old"),
    ),
    contacts=(
        ContactData(
            system="phone", value="+1 617 555 0199", use="work", rank=2, normalized_value="+16175550199"
        ),
        ContactData(system="email", value="Jose@Example.org", normalized_value="jose@example.org"),
    ),
    gender="male",
    birth_date=date(1980, 3, 4),
    deceased=True,
    deceased_at=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
    marital_status="M",
    multiple_birth=True,
    multiple_birth_order=2,
)


def test_json_form_reads_back_as_the_same_data_without_links():
    assert data_from_json(data_to_json(RICH)) == RICH
    empty = PatientData()
    assert data_to_json(empty) == {} and data_from_json({}) == empty
    linked = replace(RICH, links=(LinkData(other=uuid4(), type="seealso"),), managing_organization=uuid4())
    assert data_from_json(data_to_json(linked)) == RICH  # neither is compared by the matcher


def test_json_form_reads_back_demo_records_as_equal_hashable_immutable_data():
    """``data_from_json`` builds the frozen shapes without their ``__init__``: they must
    be indistinguishable from ones made the usual way (equal, same hash, frozen, tuples
    where the shapes have tuples, dates as dates)."""
    for record in generate_demo(300, seed=21):
        stored = json.loads(json.dumps(data_to_json(record.data)))  # as the jsonb column gives it
        read = data_from_json(stored)
        assert read == record.data and hash(read) == hash(record.data)
        assert type(read.names) is tuple and all(type(n.given) is tuple for n in read.names)
        assert read.birth_date is None or type(read.birth_date) is date
    with pytest.raises(FrozenInstanceError):
        read.gender = "other"
    with pytest.raises(FrozenInstanceError):
        read.names[0].family = "Other"


def test_json_form_holds_only_json_values_and_leaves_defaults_out():
    stored = data_to_json(RICH)
    assert stored["birth_date"] == "1980-03-04"
    assert stored["names"][1] == {
        "family": "Nunez",
        "given": ["Jose"],
        "suffix": ["Jr"],
        "use": "old",
        "period_end": "2001-01-02",
    }
    assert "active" not in stored and "links" not in stored


def _without_links(data: PatientData) -> PatientData:
    return replace(data, links=(), managing_organization=None)


@pytest.mark.django_db
def test_every_write_keeps_the_rows_match_data_equal_to_the_stored_patient(clerk):
    data = replace(RICH, names=tuple(reversed(RICH.names)))  # primary name last: stored first
    patient = register_patient(data=data, actor=clerk)
    other = register_patient(data=patient_data(family="Other", mrn="9"), actor=clerk)
    stored = load_patients([patient.pk, other.pk])
    for p in (patient, other):
        row = PatientIndex.objects.get(patient_id=p.pk)
        assert data_from_json(row.match_data) == _without_links(stored[p.pk][1])
    assert candidate_records([patient.pk, other.pk]) == {
        pid: (uuid, _without_links(d)) for pid, (uuid, d) in stored.items()
    }
    moved = replace(stored[patient.pk][1], gender="female")
    update_patient(patient=patient, data=moved, expected_version=patient.version, actor=clerk)
    ((_, reread),) = candidate_records([patient.pk]).values()
    assert reread.gender == "female"
    delete_patient(patient=other, actor=clerk, reason="test")
    assert other.pk not in candidate_records([patient.pk, other.pk])


@pytest.mark.django_db
def test_rows_written_before_the_column_existed_are_read_from_the_patient_tables(clerk):
    probe_data = patient_data(family="Smyth", given=("Jon",), mrn="78")
    original = register_patient(data=patient_data(family="Smith", given=("John",), mrn="77"), actor=clerk)
    register_patient(data=patient_data(family="Smith", given=("Jane",), mrn="79"), actor=clerk)
    filled = match_patient(probe_data)
    PatientIndex.objects.update(match_data=None)
    assert candidate_records([original.pk]) == {
        original.pk: (original.uuid, _without_links(load_patients([original.pk])[original.pk][1]))
    }
    unfilled = match_patient(probe_data)
    assert filled and [(o.patient_id, o.result.to_dict()) for o in filled] == [
        (o.patient_id, o.result.to_dict()) for o in unfilled
    ]
    # check_search_index reports the rows a rebuild must fill
    drift = check_index()
    assert drift.stale and all(fields == ["match_data"] for fields in drift.stale.values())


@pytest.mark.django_db
def test_a_registration_indexes_and_matches_from_its_data_as_a_read_back_would(clerk):
    """``register_patient`` hands its cleaned data to the index and the matcher (no read
    back). The row and the scores must be those the stored patient gives."""
    from matching.models import MatchCandidate
    from search.indexing import INDEX_FIELDS, load_index_values

    def rich(mrn: str, given: str) -> PatientData:
        return replace(
            RICH,
            names=(NameData(family="Nunez", given=(given,), use="old"), *RICH.names),  # primary not first
            addresses=tuple(reversed(RICH.addresses)),  # primary address last
            identifiers=(IdentifierData(system=MRN_SYSTEM, value=mrn, type="MR"),),
        )

    first = register_patient(data=rich("31", "Jose"), actor=clerk)
    second = register_patient(data=rich("32", "José"), actor=clerk)
    rebuilt = load_index_values([first.pk, second.pk])
    for p in (first, second):
        row = PatientIndex.objects.values(*INDEX_FIELDS).get(patient_id=p.pk)
        assert row == {f: rebuilt[p.pk][f] for f in INDEX_FIELDS}
    (opened,) = MatchCandidate.objects.filter(patient_b=second)
    (again,) = match_patient(load_patients([second.pk])[second.pk][1], exclude=second.pk)
    assert again.patient_id == first.pk
    assert opened.probability == again.probability
    assert opened.evidence == again.evidence_json(swap=opened.patient_a_id == second.pk)
