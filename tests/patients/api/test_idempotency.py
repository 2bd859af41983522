"""Idempotency-Key on POST: a retry returns the first response and writes nothing."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import IdempotencyRecord
from patients.models import Patient
from patients.services import delete_patient
from tests.patients.api.helpers import PATIENTS, detail, error_fields, errors_of, patient_body

pytestmark = pytest.mark.django_db

KEY = "8d6f1c1e-2b7a-4a57-9d0e-3c5b8f7e2a10"


def test_a_retried_registration_returns_the_first_response_and_writes_nothing(as_integrator):
    first = as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert first.status_code == 201
    history_rows = Patient.history.count()

    retry = as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["ETag"] == first["ETag"]
    assert retry["Location"] == first["Location"]
    assert retry["Idempotent-Replayed"] == "true"
    assert Patient.objects.count() == 1
    assert Patient.history.count() == history_rows


def test_key_order_and_whitespace_do_not_make_a_different_body(as_integrator):
    body = patient_body()
    as_integrator.post(PATIENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    reordered = dict(reversed(list(body.items())))
    retry = as_integrator.post(PATIENTS, reordered, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert retry.status_code == 201
    assert Patient.objects.count() == 1


def test_the_same_key_with_another_body_is_422(as_integrator):
    as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    response = as_integrator.post(PATIENTS, patient_body(mrn="78"), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.status_code == 422
    [error] = errors_of(response)
    assert error["code"] == "idempotency-key-reused"
    assert "different request body" in error["message"]
    assert Patient.objects.count() == 1


def test_without_a_key_a_second_registration_is_a_conflict(as_integrator):
    as_integrator.post(PATIENTS, patient_body(), format="json")
    assert as_integrator.post(PATIENTS, patient_body(), format="json").status_code == 409


def test_keys_are_per_user(as_integrator, as_clerk):
    as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    response = as_clerk.post(PATIENTS, patient_body(mrn="78"), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.status_code == 201
    assert Patient.objects.count() == 2


def test_a_failed_request_is_not_stored_so_the_fixed_retry_runs(as_integrator):
    bad = patient_body(gender="robot")
    assert as_integrator.post(PATIENTS, bad, format="json", HTTP_IDEMPOTENCY_KEY=KEY).status_code == 400
    assert not IdempotencyRecord.objects.exists()
    good = as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert good.status_code == 201


def test_a_conflicting_registration_retried_stays_a_conflict(as_integrator, jones):
    body = patient_body(mrn="501")
    for _ in range(2):
        response = as_integrator.post(PATIENTS, body, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
        assert response.status_code == 409
        assert errors_of(response)[0]["existing_patient"] == str(jones.uuid)


def test_restore_honours_the_key(as_steward, jones):
    delete_patient(patient=jones)
    url = f"{detail(jones.uuid)}restore/"
    first = as_steward.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    retry = as_steward.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    jones.refresh_from_db()
    assert jones.version == 3  # registered, deleted, restored once


@pytest.mark.parametrize("key", ["", "with space", "é", "x" * 256])
def test_malformed_keys_are_400(as_integrator, key):
    response = as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert error_fields(response) == {"Idempotency-Key"}


def test_keys_older_than_a_day_are_forgotten(as_integrator):
    as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    # Past its day the key is free again: the request runs, here into the identifier.
    response = as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    assert response.status_code == 409


def test_purge_command_deletes_only_entries_older_than_24_hours(as_integrator, capsys):
    as_integrator.post(PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY="old")
    as_integrator.post(PATIENTS, patient_body(mrn="78"), format="json", HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    call_command("purge_idempotency_keys", hours=1)

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert "Deleted 1 idempotency record(s) older than 24 hours." in capsys.readouterr().out
