"""Real threads, real connections, through the whole REST stack: the database decides."""

import pytest

from patients.models import Identifier, Patient
from tests.concurrency import patient_held_with_a_short_statement_timeout, run_at_once
from tests.patients.api.helpers import PATIENTS, detail, errors_of, patient_body, token_client

THREADS = 16


@pytest.mark.django_db(transaction=True)
def test_sixteen_simultaneous_registrations_of_one_mrn_create_one_patient(integrator):
    clients = [token_client(integrator) for _ in range(THREADS)]

    responses = run_at_once(
        lambda i: clients[i].post(PATIENTS, patient_body(given=[f"John{i}"], mrn="77"), format="json")
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * (THREADS - 1), responses
    winner = next(r.json()["id"] for r in responses if r.status_code == 201)
    for r in responses:
        if r.status_code == 409:
            assert errors_of(r)[0]["existing_patient"] == winner
    assert Patient.objects.count() == 1
    assert Identifier.objects.filter(value="77").count() == 1


@pytest.mark.django_db(transaction=True)
def test_sixteen_simultaneous_updates_of_one_version_let_one_win(integrator):
    created = token_client(integrator).post(PATIENTS, patient_body(), format="json").json()
    clients = [token_client(integrator) for _ in range(THREADS)]
    genders = ["female", "other"]

    responses = run_at_once(
        lambda i: clients[i].patch(
            detail(created["id"]),
            {"gender": genders[i % 2], "marital_status": "M"},
            format="json",
            HTTP_IF_MATCH='W/"1"',
        )
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * (THREADS - 1), responses
    for r in responses:
        if r.status_code == 412:
            assert errors_of(r)[0]["current_version"] == 2
    patient = Patient.objects.get(uuid=created["id"])
    assert patient.version == 2
    assert patient.history.count() == 2


@pytest.mark.django_db(transaction=True)
def test_sixteen_simultaneous_retries_with_one_idempotency_key_register_once(integrator):
    client_list = [token_client(integrator) for _ in range(THREADS)]

    responses = run_at_once(
        lambda i: client_list[i].post(
            PATIENTS, patient_body(), format="json", HTTP_IDEMPOTENCY_KEY="one-registration"
        )
    )

    assert [r.status_code for r in responses] == [201] * THREADS, responses
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == THREADS - 1
    assert Patient.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_write_that_waits_past_the_statement_timeout_is_a_503_and_changes_nothing(integrator, caplog):
    created = token_client(integrator).post(PATIENTS, patient_body(), format="json").json()
    patient = Patient.objects.get(uuid=created["id"])

    with patient_held_with_a_short_statement_timeout(patient):
        response = token_client(integrator).patch(
            detail(created["id"]), {"gender": "other"}, format="json", HTTP_IF_MATCH='W/"1"'
        )

    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert errors_of(response)[0]["code"] == "timeout"
    assert "Statement timeout" in caplog.text
    patient.refresh_from_db()
    assert (patient.version, patient.gender) == (1, "male")
