"""Real threads on real connections: the database decides, not Python."""

from dataclasses import replace

import pytest

from patients.errors import IdentifierConflict, VersionConflict
from patients.models import Identifier, Patient
from patients.services import patient_to_data, register_patient, update_patient
from tests.concurrency import run_at_once
from tests.factories import patient_data

THREADS = 16


@pytest.mark.django_db(transaction=True)
def test_sixteen_concurrent_registrations_of_one_mrn_create_one_patient():
    results = run_at_once(lambda i: register_patient(data=patient_data(given=(f"John{i}",), mrn="77")))
    created = [r for r in results if isinstance(r, Patient)]
    conflicts = [r for r in results if isinstance(r, IdentifierConflict)]
    assert len(created) == 1, results
    assert len(conflicts) == THREADS - 1, results
    assert all(c.existing.pk == created[0].pk for c in conflicts)
    assert Patient.objects.count() == 1
    assert Identifier.objects.filter(value="77").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_updates_with_the_same_version_let_exactly_one_win():
    patient = register_patient(data=patient_data())
    data = patient_to_data(patient)
    results = run_at_once(
        lambda i: update_patient(
            patient=patient,
            data=replace(data, marital_status="M", gender=["female", "other"][i % 2]),
            expected_version=1,
        ),
        count=8,
    )
    winners = [r for r in results if isinstance(r, Patient)]
    losers = [r for r in results if isinstance(r, VersionConflict)]
    assert len(winners) == 1 and len(losers) == 7, results
    patient.refresh_from_db()
    assert patient.version == 2
    assert patient.history.count() == 2
