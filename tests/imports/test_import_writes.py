"""The bulk write path writes what the one-patient services write, and matches as they match."""

from dataclasses import replace

import pytest
from django.core.management import call_command
from django.db import transaction

import patients.bulk
from matching.bulk import batch_term_frequencies, match_new_patients
from matching.models import MatchCandidate
from matching.services import refresh_candidates_for, term_frequencies
from patients.bulk import write_batch
from patients.data import IdentifierData, LinkData, NameData
from patients.models import Address, Contact, Identifier, Name, Patient
from patients.queries import load_patient_data
from patients.services import register_patient
from search.indexing import load_index_values
from search.models import PatientIndex
from tests.factories import MRN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db

IGNORED = {"id", "uuid", "patient", "patient_id", "created_at", "history_id", "history_date", "value"}


def history_values(model, patient: Patient) -> list[dict]:
    rows = model.history.filter(patient=patient) if model is not Patient else patient.history.all()
    return [
        {k: v for k, v in row.__dict__.items() if k not in IGNORED and not k.startswith("_")} for row in rows
    ]


def rich(mrn: str):
    return replace(
        patient_data(mrn=mrn, email="Jo@Example.org"),
        names=(
            NameData(family="Smith", given=("John", "Paul"), use="official"),
            NameData(family="Smyth", given=("Jon",), use="nickname", primary=True),
        ),
        marital_status="M",
        multiple_birth=True,
        multiple_birth_order=2,
    )


def test_created_rows_history_and_index_equal_those_of_register_patient(clerk):
    registered = register_patient(data=rich("1"), actor=clerk, reason="Go-live")
    result = write_batch([(2, rich("2"))], actor=clerk, reason="Go-live", match=False)
    imported = Patient.objects.get(pk=result.created_ids[0])

    for model in (Patient, Name, Identifier, Address, Contact):
        assert history_values(model, imported) == history_values(model, registered), model
    mine, theirs = load_patient_data([imported.pk, registered.pk]).values()
    assert replace(mine, identifiers=()) == replace(theirs, identifiers=())
    # The index row is the one a rebuild computes from the stored rows.
    stored = load_index_values([imported.pk])[imported.pk]
    row = PatientIndex.objects.filter(patient=imported).values(*stored).get()
    assert row == stored


def test_a_round_that_loses_an_identifier_race_is_redone_record_by_record(monkeypatch):
    """Another writer registers an identifier between our lookup and our insert: the
    unique index stops the bulk insert, and only the record in conflict is rejected."""
    holder = register_patient(data=patient_data(mrn="77"))
    monkeypatch.setattr(patients.bulk, "_holders", lambda records: {})  # the lookup saw nothing
    result = write_batch([(1, patient_data(mrn="1")), (2, patient_data(mrn="77"))], match=False)
    assert result.counts["created"] == 1
    (reject,) = result.rejects
    assert reject.number == 2
    message = f"Identifier {MRN_SYSTEM}|77 already belongs to patient {holder.uuid}."
    assert reject.errors == {"identifiers[0]": [message]}
    assert Patient.objects.count() == 2


def test_links_and_unknown_organizations_take_the_service_rules():
    other = register_patient(data=patient_data(mrn="1"))
    linked = replace(patient_data(mrn="2"), links=(LinkData(other=other.uuid, type="seealso"),))
    orphan = replace(patient_data(mrn="3"), managing_organization=other.uuid)  # not an organization
    result = write_batch([(1, linked), (2, orphan)], match=False)
    assert result.counts["created"] == 1
    assert other.links.get().type == "seealso"  # the reverse link the service keeps
    assert [(r.number, list(r.errors)) for r in result.rejects] == [(2, ["managing_organization"])]


def people():
    base = [
        patient_data(mrn="1", family="Smith", given=("John",)),
        patient_data(mrn="2", family="Smyth", given=("Jon",)),
        patient_data(mrn="3", family="Smith", given=("Jane",), gender="female", phone="+1 617 555 0101"),
        patient_data(
            mrn="4", family="Jones", given=("Mary",), gender="female", phone=None, postal_code="02139"
        ),
        patient_data(
            mrn="5", family="Jonas", given=("Mary",), gender="female", phone=None, postal_code="02139"
        ),
        patient_data(mrn="6", family="Taylor", given=("Ann",), gender="female", phone="+1 617 555 0199"),
    ]
    return [(n, data) for n, data in enumerate(base, start=1)]


def candidates() -> dict:
    return {
        (c.patient_a_id, c.patient_b_id): (c.status, c.grade, round(c.probability, 9), c.evidence, c.blocks)
        for c in MatchCandidate.objects.all()
    }


def test_batch_matching_agrees_with_matching_one_patient_at_a_time():
    result = write_batch(people(), match=False)
    call_command("refresh_name_frequencies", verbosity=0)
    data = load_patient_data(result.created_ids)

    with transaction.atomic():
        opened = match_new_patients(data)
        batch = candidates()
        transaction.set_rollback(True)
    assert not MatchCandidate.objects.exists()
    for pk in sorted(result.created_ids):
        refresh_candidates_for(Patient.objects.get(pk=pk))

    assert batch == candidates()
    assert opened == len(batch) >= 2


def test_batch_term_frequencies_equal_the_per_probe_ones():
    write_batch(people(), match=False)
    call_command("refresh_name_frequencies", verbosity=0)
    probes = dict(people())
    probes[99] = replace(patient_data(mrn="9"), names=(NameData(text="Nobody"),))
    assert batch_term_frequencies(probes) == {n: term_frequencies(probe) for n, probe in probes.items()}


def test_identifiers_keep_their_details():
    data = replace(
        patient_data(mrn=None),
        identifiers=(
            IdentifierData(system=MRN_SYSTEM, value="9", type="MR", use="usual", assigner="General"),
        ),
    )
    write_batch([(1, data)], match=False)
    ident = Identifier.objects.get()
    assert (ident.type, ident.use, ident.assigner, ident.live) == ("MR", "usual", "General", True)
