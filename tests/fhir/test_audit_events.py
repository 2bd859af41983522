"""GET /fhir/AuditEvent: the access audit trail as BALP-shaped FHIR R4 AuditEvents, for auditors."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

from audit.models import AuditEvent
from audit.services import record
from fhir_api.audit_events import (
    AuditSearch,
    audit_event_to_fhir,
    outcome_code,
    parse_audit_search,
)
from fhir_api.search_params import SearchParamError
from tests.fhir.conftest import BASE, outcome_issues, patient_resource

BASE_URL = "http://testserver/fhir"


def _resources(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return [e["resource"] for e in response.json().get("entry", []) if e["search"]["mode"] == "match"]


def _next(response) -> str | None:
    link = next((x for x in response.json()["link"] if x["relation"] == "next"), None)
    if link is None:
        return None
    parts = urlsplit(link["url"])
    return f"{parts.path}?{parts.query}"


def _entity(resource: dict, role: str) -> list[dict]:
    return [e for e in resource["entity"] if e.get("role", {}).get("code") == role]


# --- Pure: mapping and parameters -----------------------------------------------------------


def _row(**fields) -> AuditEvent:
    values = {
        "pk": 7,
        "recorded_at": timezone.now(),
        "action": "read",
        "outcome": "success",
        "status_code": 200,
        "interface": "fhir",
        "user_id": 3,
        "username": "ivy",
        "client": "token:abcd1234",
        "ip": "10.0.0.5",
        "request_id": "req-1",
        "method": "GET",
        "route": "/fhir/Patient/{id}",
        "query": "",
        "patients": ["0f6a1a4e-0000-4000-8000-000000000001"],
        "detail": {},
    }
    values.update(fields)
    return AuditEvent(**values)


def test_a_read_maps_to_the_balp_patient_read_shape():
    resource = audit_event_to_fhir(_row(), base_url=BASE_URL)
    FhirAuditEvent.model_validate(resource)
    assert resource["type"]["code"] == "rest"
    assert [c["code"] for c in resource["subtype"]] == ["read"]
    assert (resource["action"], resource["outcome"], resource["outcomeDesc"]) == (
        "R",
        "0",
        "success (HTTP 200)",
    )
    user, server = resource["agent"]
    assert user["requestor"] is True and user["who"]["identifier"]["value"] == "ivy"
    assert user["altId"] == "token:abcd1234"
    assert user["network"] == {"address": "10.0.0.5", "type": "2"}
    assert server["requestor"] is False
    assert resource["source"]["type"][0]["code"] == "4"  # application server
    (patient,) = _entity(resource, "1")
    assert patient["what"]["reference"] == "Patient/0f6a1a4e-0000-4000-8000-000000000001"
    request = next(e for e in resource["entity"] if e["type"]["code"] == "XrequestId")
    assert request["what"]["identifier"]["value"] == "req-1"


def test_a_search_carries_its_query_in_base64_and_is_an_execute():
    resource = audit_event_to_fhir(
        _row(action="search", query="family=Sm%C3%AFth&_count=5", patients=[]), base_url=BASE_URL
    )
    FhirAuditEvent.model_validate(resource)
    assert (resource["action"], resource["subtype"][0]["code"]) == ("E", "search-type")
    (query,) = _entity(resource, "24")
    assert base64.b64decode(query["query"]).decode() == "family=Sm%C3%AFth&_count=5"
    assert query["type"]["code"] == "2"


@pytest.mark.parametrize(
    ("action", "route", "letter", "codes"),
    [
        ("create", "/fhir/Patient", "C", ["create"]),
        ("update", "/fhir/Patient/{id}", "U", ["update"]),
        ("delete", "/fhir/Patient/{id}", "D", ["delete"]),
        ("vread", "/fhir/Patient/{id}/_history/{vid}", "R", ["vread"]),
        ("history", "/fhir/Patient/{id}/_history", "R", ["history-instance"]),
        ("history", "/fhir/Patient/_history", "R", ["history-type"]),
        ("match", "/fhir/Patient/$match", "E", ["operation", "match"]),
        ("merge", "/fhir/Patient/$merge", "U", ["operation", "merge"]),
        ("resolve", "/fhir/Patient/$ihe-pix", "E", ["operation", "ihe-pix"]),
        ("import", "", "C", ["import"]),
    ],
)
def test_actions_map_to_balp_action_and_subtype(action, route, letter, codes):
    resource = audit_event_to_fhir(_row(action=action, route=route), base_url=BASE_URL)
    FhirAuditEvent.model_validate(resource)
    assert resource["action"] == letter
    assert [c["code"] for c in resource["subtype"]] == codes


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("success", 200, "0"),
        ("denied", 403, "4"),
        ("failed", 409, "4"),
        ("failed", 500, "8"),
        ("failed", None, "8"),
    ],
)
def test_outcome_codes(outcome, status, code):
    assert outcome_code(outcome, status) == code


def test_a_command_without_user_or_request_still_validates():
    row = _row(interface="command", username="", client="system", ip=None, request_id="", method="", route="")
    resource = audit_event_to_fhir(row, base_url=BASE_URL)
    FhirAuditEvent.model_validate(resource)
    assert resource["type"]["code"] == "110110"  # DICOM Patient Record: not a REST call
    assert resource["agent"][0]["who"] == {"display": "system"}


@pytest.mark.parametrize(
    ("pairs", "param"),
    [
        ([("patient", "Practitioner/1")], "patient"),
        ([("patient", "not-a-uuid")], "patient"),
        ([("date", "ne2024")], "date"),
        ([("date", "2024-13")], "date"),
        ([("action", "X")], "action"),
        ([("subtype", "frobnicate")], "subtype"),
        ([("outcome", "2")], "outcome"),
        ([("address", "10.0.0.500")], "address"),
        ([("family", "Smith")], "family"),
        ([("agent:exact", "ivy")], "agent:exact"),
        ([("_count", "-1")], "_count"),
        ([("_sort", "patient")], "_sort"),
        ([("_cursor", "abc")], "_cursor"),
    ],
)
def test_bad_parameters_are_errors_naming_the_parameter(pairs, param):
    with pytest.raises(SearchParamError) as caught:
        parse_audit_search(pairs)
    assert caught.value.param == param


def test_parameters_are_read_as_and_of_ors():
    search = parse_audit_search(
        [("action", "R,E"), ("date", "ge2024-01"), ("date", "lt2024-02"), ("patient", f"{BASE_URL}/Patient/"
         "0f6a1a4e-0000-4000-8000-000000000001"), ("_count", "500"), ("_sort", "date")]
    )  # fmt: skip
    assert isinstance(search, AuditSearch)
    assert search.actions == (("R", "E"),) and len(search.dates) == 2
    assert str(search.patients[0][0]) == "0f6a1a4e-0000-4000-8000-000000000001"
    assert search.count == 100 and search.notes and search.descending is False


# --- The endpoint -------------------------------------------------------------------------------


def test_only_auditors_may_read_the_trail(as_integrator, as_steward, anonymous):
    for client, status in ((as_integrator, 403), (as_steward, 403), (anonymous, 401)):
        response = client.get(f"{BASE}/AuditEvent")
        assert response.status_code == status
        assert outcome_issues(response)[0]["diagnostics"]
    denied = AuditEvent.objects.filter(outcome="denied", route="/fhir/AuditEvent").count()
    assert denied == 3  # the refusals are themselves recorded


def test_an_auditor_sees_who_read_a_patient(as_integrator, as_auditor, integrator, smith, jones):
    assert as_integrator.get(f"{BASE}/Patient/{smith.uuid}").status_code == 200
    assert as_integrator.get(f"{BASE}/Patient/{jones.uuid}").status_code == 200
    response = as_auditor.get(f"{BASE}/AuditEvent?patient=Patient/{smith.uuid}&subtype=read")
    assert response["Content-Type"].startswith("application/fhir+json")
    (event,) = _resources(response)
    FhirAuditEvent.model_validate(event)
    assert event["agent"][0]["who"]["identifier"]["value"] == integrator.username
    assert event["agent"][0]["altId"].startswith("token:")
    assert [e["what"]["reference"] for e in _entity(event, "1")] == [f"Patient/{smith.uuid}"]
    # The patient's whole story: the registration (create) and the read, newest first.
    everything = _resources(as_auditor.get(f"{BASE}/AuditEvent?patient={smith.uuid}"))
    assert [e["subtype"][0]["code"] for e in everything] == ["read", "create"]


def test_reading_the_trail_is_recorded_without_patients(as_auditor, auditor, smith):
    assert as_auditor.get(f"{BASE}/AuditEvent?patient={smith.uuid}").status_code == 200
    last = AuditEvent.objects.order_by("-id").first()
    assert (last.action, last.username, last.patients) == ("search", auditor.username, [])
    assert last.detail == {"resource": "AuditEvent"} and last.query == f"patient={smith.uuid}"
    # ... so it never shows up as an access to the patient.
    events = _resources(as_auditor.get(f"{BASE}/AuditEvent?patient={smith.uuid}"))
    assert all(e["agent"][0]["who"]["display"] != auditor.username for e in events)


def test_filters_by_agent_action_outcome_and_date(as_integrator, as_auditor, integrator, smith):
    as_integrator.get(f"{BASE}/Patient?family=Smith")
    as_integrator.post(f"{BASE}/Patient", patient_resource(mrn="900", family="Olsen"))
    as_integrator.delete(f"{BASE}/Patient/{smith.uuid}")  # 403: integrators may not delete
    found = _resources(as_auditor.get(f"{BASE}/AuditEvent?agent={integrator.username}&action=E"))
    assert [(e["subtype"][0]["code"], e["action"]) for e in found] == [("search-type", "E")]
    (denied,) = _resources(as_auditor.get(f"{BASE}/AuditEvent?outcome=4&agent={integrator.username}"))
    assert (denied["action"], denied["outcomeDesc"]) == ("D", "denied (HTTP 403)")
    created = _resources(as_auditor.get(f"{BASE}/AuditEvent?action=C&agent={integrator.username}"))
    assert len(created) == 1
    today = timezone.now().date()
    day = _resources(as_auditor.get(f"{BASE}/AuditEvent?agent={integrator.username}&date={today}"))
    assert len(day) == 3
    tomorrow = today + timedelta(days=1)
    assert (
        _resources(as_auditor.get(f"{BASE}/AuditEvent?agent={integrator.username}&date=ge{tomorrow}")) == []
    )
    assert (
        len(_resources(as_auditor.get(f"{BASE}/AuditEvent?agent={integrator.username}&date=lt{tomorrow}")))
        == 3
    )


def test_paging_with_next_links_sees_every_event_once(as_auditor, clerk):
    ids = {record(action="export", actor=clerk, detail={"n": i}).pk for i in range(7)}
    seen, url = [], f"{BASE}/AuditEvent?subtype=export&_count=3"
    while url:
        response = as_auditor.get(url)  # each page read appends an event: offsets would drift
        seen += [int(e["id"]) for e in _resources(response)]
        url = _next(response)
    assert seen == sorted(ids, reverse=True)
    oldest_first = _resources(as_auditor.get(f"{BASE}/AuditEvent?subtype=export&_sort=date&_count=2"))
    assert [int(e["id"]) for e in oldest_first] == sorted(ids)[:2]


def test_read_one_event_and_unknown_ids(as_auditor, smith):
    event = AuditEvent.objects.filter(patients__contains=[smith.uuid]).get()
    response = as_auditor.get(f"{BASE}/AuditEvent/{event.pk}")
    assert response.status_code == 200
    resource = response.json()
    FhirAuditEvent.model_validate(resource)
    assert resource["id"] == str(event.pk) and resource["subtype"][0]["code"] == "create"
    for bad in ("999999999", "abc", "99999999999999999999999"):
        response = as_auditor.get(f"{BASE}/AuditEvent/{bad}")
        assert response.status_code == 404
        assert outcome_issues(response)[0]["code"] == "not-found"


def test_bad_search_values_are_a_400_outcome(as_auditor):
    response = as_auditor.get(f"{BASE}/AuditEvent?date=yesterday")
    assert response.status_code == 400
    assert outcome_issues(response)[0]["expression"] == ["date"]
    response = as_auditor.get(f"{BASE}/AuditEvent?_cursor=123456")
    assert response.status_code == 400
    for query in ("_count=%C2%B2", "_count=" + "9" * 5000, "_cursor=%C2%B2", "_cursor=" + "9" * 5000):
        response = as_auditor.get(f"{BASE}/AuditEvent?{query}")
        assert response.status_code == 400, query
        assert outcome_issues(response)[0]["expression"] == [query.split("=")[0]]


def test_the_capability_statement_lists_audit_event(db, anonymous):
    resources = anonymous.get(f"{BASE}/metadata").json()["rest"][0]["resource"]
    audit = next(r for r in resources if r["type"] == "AuditEvent")
    assert {i["code"] for i in audit["interaction"]} == {"read", "search-type"}
    assert {"patient", "agent", "date", "action", "subtype", "outcome"} <= {
        p["name"] for p in audit["searchParam"]
    }
    assert "name" not in audit
