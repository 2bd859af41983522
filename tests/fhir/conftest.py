"""Shared fixtures of the FHIR tests: token clients that speak application/fhir+json.

``as_integrator.post(url, body)`` sends ``body`` as FHIR JSON; every response can be read
with ``.json()``. ``patient_resource(...)`` builds a deterministic Patient resource.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import issue_token
from patients.models import Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data

FHIR_JSON = "application/fhir+json"
BASE = "/fhir"


class FhirClient(Client):
    """A Django test client with a bearer token; bodies are dicts sent as FHIR JSON."""

    def __init__(self, token: str | None = None, **defaults):
        if token:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        defaults.setdefault("HTTP_ACCEPT", FHIR_JSON)
        super().__init__(**defaults)

    def _send(self, method, path, data=None, content_type=FHIR_JSON, **extra):
        body = json.dumps(data) if isinstance(data, dict | list) else data
        return getattr(super(), method)(path, body, content_type=content_type, **extra)

    def post(self, path, data=None, content_type=FHIR_JSON, **extra):
        return self._send("post", path, data, content_type, **extra)

    def put(self, path, data=None, content_type=FHIR_JSON, **extra):
        return self._send("put", path, data, content_type, **extra)

    def patch(self, path, data=None, content_type=FHIR_JSON, **extra):
        return self._send("patch", path, data, content_type, **extra)


def fhir_client(user=None) -> FhirClient:
    if user is None:
        return FhirClient()
    _, plain = issue_token(user=user, name=f"{user.username} FHIR test token")
    return FhirClient(plain)


def patient_resource(
    *,
    family: str = "Smith",
    given: tuple[str, ...] = ("John",),
    birth_date: str | None = "1980-03-04",
    gender: str | None = "male",
    mrn: str | None = "77",
    phone: str | None = "+1 617 555 0100",
    **extra,
) -> dict:
    resource = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": list(given)}],
        "address": [
            {"line": ["1 Main St"], "city": "Boston", "state": "MA", "postalCode": "02134", "country": "US"}
        ],
    }
    if mrn:
        resource["identifier"] = [{"system": MRN_SYSTEM, "value": mrn}]
    if phone:
        resource["telecom"] = [{"system": "phone", "value": phone, "use": "home"}]
    if gender:
        resource["gender"] = gender
    if birth_date:
        resource["birthDate"] = birth_date
    resource.update(extra)
    return resource


def outcome_issues(response) -> list[dict]:
    """The issues of an OperationOutcome response (asserting it is one)."""
    assert response["Content-Type"].startswith(("application/fhir+json", "application/json")), response[
        "Content-Type"
    ]
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    return body["issue"]


def expressions(response) -> set[str]:
    return {e for item in outcome_issues(response) for e in item.get("expression", [])}


@pytest.fixture
def anonymous() -> FhirClient:
    return fhir_client()


@pytest.fixture
def as_integrator(integrator) -> FhirClient:
    return fhir_client(integrator)


@pytest.fixture
def as_steward(steward) -> FhirClient:
    return fhir_client(steward)


@pytest.fixture
def as_auditor(auditor) -> FhirClient:
    return fhir_client(auditor)


@pytest.fixture
def as_outsider(outsider) -> FhirClient:
    return fhir_client(outsider)


@pytest.fixture
def smith(clerk) -> Patient:
    """A stored patient (MRN 77 in tests.factories.MRN_SYSTEM)."""
    return register_patient(data=patient_data(), actor=clerk, reason="seed")


@pytest.fixture
def jones(clerk) -> Patient:
    data = patient_data(family="Jones", given=("Mary",), gender="female", mrn="501", phone="617 555 0142")
    return register_patient(data=data, actor=clerk, reason="seed")
