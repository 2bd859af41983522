"""The access audit trail: what is recorded, the hash chain, append-only, fail closed."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import record, seal_pending, verify_chain
from patients.services import register_patient
from tests.factories import patient_data
from tests.patients.api.helpers import PATIENTS, patient_body, token_client


def events(**filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


@pytest.fixture
def smith(clerk):
    return register_patient(data=patient_data(family="Smith", mrn="A-1"), actor=clerk, reason="seed")


# --- What is recorded ----------------------------------------------------------------------


def test_a_registration_is_audited_in_its_transaction(integrator):
    client = token_client(integrator)
    response = client.post(PATIENTS, patient_body(mrn="R-1"), format="json", HTTP_X_REQUEST_ID="req-1")
    assert response.status_code == 201
    (event,) = events(action="create")
    assert event.outcome == "success"
    assert [str(p) for p in event.patients] == [response.json()["id"]]
    assert event.username == "integrator" and event.client.startswith("token:")
    assert event.interface == "rest" and event.method == "POST" and event.request_id == "req-1"
    assert event.ip == "127.0.0.1"
    assert event.route == "/api/v1/patients/"


def test_a_refused_write_leaves_a_failed_event_and_no_success(integrator, smith):
    client = token_client(integrator)
    before = AuditEvent.objects.count()
    response = client.post(PATIENTS, patient_body(mrn="A-1"), format="json")  # the MRN is taken
    assert response.status_code == 409
    (event,) = AuditEvent.objects.filter(id__gt=0).order_by("-id")[:1]
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.outcome, event.status_code) == ("create", "failed", 409)


def test_reads_searches_and_history_name_the_patients_returned(steward, smith):
    client = token_client(steward)
    assert client.get(f"{PATIENTS}{smith.uuid}/").status_code == 200
    assert client.get(PATIENTS, {"family": "Smith"}).status_code == 200
    assert client.get(f"{PATIENTS}{smith.uuid}/history/").status_code == 200
    read, search, history = events(action__in=["read", "search", "history"])
    assert read.action == "read" and read.patients == [smith.uuid]
    assert search.action == "search" and search.patients == [smith.uuid] and search.query == "family=Smith"
    assert history.action == "history" and history.patients == [smith.uuid]


def test_a_refusal_is_audited_as_denied(outsider, smith):
    response = token_client(outsider).get(f"{PATIENTS}{smith.uuid}/")
    assert response.status_code == 403
    (event,) = events(outcome="denied")
    assert (event.action, event.status_code, event.username) == ("read", 403, "outsider")
    assert event.patients == []  # refused before anything was read


def test_an_anonymous_request_is_audited_as_denied(client, smith):
    assert client.get(PATIENTS).status_code == 401
    (event,) = events(outcome="denied")
    assert event.client == "anonymous" and event.status_code == 401


def test_a_refused_write_to_a_path_with_a_nul_is_still_audited(client, steward):
    # The unmatched path is the event's route; PostgreSQL takes no NUL in text, so the
    # event used to fail and the refusal went unrecorded.
    client.force_login(steward)
    assert client.post("/review/%00/%00/merge/", {"reason": "x"}).status_code == 404
    (event,) = events(outcome="failed")
    assert event.route == "/review/\ufffd/\ufffd/merge/" and event.status_code == 404


def test_paths_without_patient_data_are_not_audited(client, db):
    client.get("/healthz")
    client.get("/api/schema/")
    assert AuditEvent.objects.count() == 0


def test_outside_a_request_the_actor_and_command_interface_are_recorded(clerk, smith):
    (event,) = events(action="create")
    assert (event.interface, event.username, event.client) == ("command", "clerk", f"user:{clerk.pk}")


# --- The chain --------------------------------------------------------------------------------


def test_the_chain_verifies_and_the_command_says_so(clerk, smith):
    record(action="export", patients=[smith.uuid], actor=clerk, detail={"rows": 1})
    assert seal_pending() == AuditEvent.objects.count() >= 2  # the test's transaction never commits
    checked, broken = verify_chain()
    assert broken is None and checked == AuditEvent.objects.count()
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert f"{checked} events verified" in out.getvalue()
    first, second = AuditEvent.objects.order_by("seq")[:2]
    assert (first.seq, second.seq, second.prev_hash) == (1, 2, first.hash)


def test_verify_audit_seals_what_is_pending_first(clerk, smith):
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "Sealed 1 pending events." in out.getvalue() and "1 events verified" in out.getvalue()
    assert AuditEvent.objects.get().seq == 1


def test_the_table_refuses_every_change_but_the_seal(clerk, smith):
    refused = [
        "UPDATE audit_auditevent SET username = 'someone'",  # unsealed: content is fixed
        "UPDATE audit_auditevent SET seq = 7, username = 'someone'",  # a seal may not edit
        "DELETE FROM audit_auditevent",
    ]
    for statement in refused:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            connection.cursor().execute(statement)
    seal_pending()
    for statement in ("UPDATE audit_auditevent SET hash = 'x'", "UPDATE audit_auditevent SET seq = 2"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            connection.cursor().execute(statement)  # sealed: nothing changes any more
    assert AuditEvent.objects.filter(username="clerk", seq=1).exists()


def _tamper(sql: str) -> None:
    # What only a database owner could do: switch the trigger off and rewrite history.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_append_only")
        cursor.execute(sql)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_append_only")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("UPDATE audit_auditevent SET username = 'nobody' WHERE id = {second}", "content does not match"),
        ("DELETE FROM audit_auditevent WHERE id = {second}", "prev_hash is not the previous event"),
    ],
)
def test_verify_audit_names_the_first_broken_link(clerk, smith, sql, reason):
    for n in range(3):
        record(action="export", actor=clerk, detail={"n": n})
    seal_pending()
    ids = [e.pk for e in AuditEvent.objects.order_by("seq")]
    _tamper(sql.format(second=ids[1]))
    expected_break = ids[1] if "UPDATE" in sql else ids[2]
    with pytest.raises(CommandError, match=f"broken at event #{expected_break}") as failure:
        call_command("verify_audit")
    assert failure.value.returncode == 1
    checked, broken = verify_chain()
    assert broken.event_id == expected_break and reason in broken.reason and checked == 1


# --- Fail closed ------------------------------------------------------------------------------


def test_a_read_that_cannot_be_audited_returns_503_and_no_data(steward, smith):
    client = token_client(steward)
    with connection.cursor() as cursor:  # the test's transaction undoes this
        cursor.execute("ALTER TABLE audit_auditevent RENAME TO audit_auditevent_away")
    response = client.get(f"{PATIENTS}{smith.uuid}/")
    assert response.status_code == 503
    body = response.content.decode()
    assert "Smith" not in body and str(smith.uuid) not in body
    assert response.json()["errors"][0]["code"] == "audit-unavailable"


@pytest.mark.django_db(transaction=True)
def test_a_write_that_cannot_be_audited_does_not_happen(integrator):
    from patients.models import Patient

    client = token_client(integrator)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent RENAME TO audit_auditevent_away")
    try:
        response = client.post(PATIENTS, patient_body(mrn="W-1"), format="json")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent_away RENAME TO audit_auditevent")
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "audit-unavailable"
    assert not Patient.all_objects.filter(identifiers__value="W-1").exists()


# --- Concurrency ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain(clerk):
    errors = []

    def register(i: int) -> None:
        try:
            register_patient(data=patient_data(mrn=f"C-{i}", given=(f"G{i}",)), actor=clerk, reason="race")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seal_pending()  # what the last commits left for the next seal
    checked, broken = verify_chain()
    assert broken is None and checked == AuditEvent.objects.count() == 8


# --- When events are sealed ---------------------------------------------------------------------


@pytest.fixture
def seals(monkeypatch):
    """Each seal's request context at the time it ran (None: outside any request)."""
    from audit import services

    monkeypatch.setattr(services, "_last_seal", 0.0)  # due at once
    seen = []
    real = services.seal_pending

    def seal():
        seen.append(services.current_context())
        return real()

    monkeypatch.setattr(services, "seal_pending", seal)
    return seen


@pytest.mark.django_db(transaction=True)
def test_a_request_seals_its_events_after_its_response_not_inside_it(steward, smith, seals):
    response = token_client(steward).get(f"{PATIENTS}{smith.uuid}/")
    assert response.status_code == 200
    # The test client, like gunicorn, closes the response after it has been sent; that
    # (request_finished) is when the seal ran: outside the request's audit context.
    assert seals == [None]
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()
    assert verify_chain() == (AuditEvent.objects.count(), None)


@pytest.mark.django_db(transaction=True)
def test_a_seal_that_fails_after_the_response_is_logged_and_left_for_the_next(
    steward, smith, monkeypatch, caplog
):
    from audit import services

    def unavailable():
        raise DatabaseError("chain unavailable")

    monkeypatch.setattr(services, "_last_seal", 0.0)
    monkeypatch.setattr(services, "seal_pending", unavailable)
    response = token_client(steward).get(f"{PATIENTS}{smith.uuid}/")
    assert response.status_code == 200  # the response had gone out already
    assert "Sealing the audit chain after a response failed" in caplog.text
    assert AuditEvent.objects.filter(action="read", seq__isnull=True).exists()
    monkeypatch.undo()
    assert seal_pending() >= 1 and verify_chain()[1] is None


@pytest.mark.django_db(transaction=True)
def test_outside_a_request_a_commit_seals_at_once(clerk, seals):
    register_patient(data=patient_data(mrn="S-1"), actor=clerk, reason="command")
    assert seals == [None]
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()


# --- FHIR ---------------------------------------------------------------------------------------


def test_fhir_reads_searches_and_matches_are_audited(integrator, smith):
    from tests.fhir.conftest import fhir_client, patient_resource

    client = fhir_client(integrator)
    assert client.get(f"/fhir/Patient/{smith.uuid}").status_code == 200
    assert client.get("/fhir/Patient?family=Smith").status_code == 200
    probe = {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": patient_resource()}],
    }
    assert client.post("/fhir/Patient/$match", probe).status_code == 200
    read, search, match = events(interface="fhir")
    assert (read.action, read.patients, read.route) == ("read", [smith.uuid], "/fhir/Patient/{id}")
    assert (search.action, search.patients, search.query) == ("search", [smith.uuid], "family=Smith")
    assert match.action == "match" and '"resourceType": "Parameters"' in match.query


def test_a_fhir_read_that_cannot_be_audited_is_a_503_outcome_without_data(integrator, smith):
    from tests.fhir.conftest import fhir_client

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent RENAME TO audit_auditevent_away")
    response = fhir_client(integrator).get(f"/fhir/Patient/{smith.uuid}")
    assert response.status_code == 503
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and str(smith.uuid) not in response.content.decode()
