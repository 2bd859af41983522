"""Request bodies and clients for the REST tests (deterministic values only)."""

from __future__ import annotations

from rest_framework.test import APIClient

from accounts.services import issue_token
from tests.factories import MRN_SYSTEM, SSN_SYSTEM

PATIENTS = "/api/v1/patients/"


def detail(patient_id) -> str:
    return f"{PATIENTS}{patient_id}/"


def token_client(user) -> APIClient:
    _, plain = issue_token(user=user, name=f"{user.username} test token")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return client


def patient_body(
    *,
    family: str = "Smith",
    given: list[str] | None = None,
    birth_date: str | None = "1980-03-04",
    gender: str = "male",
    mrn: str | None = "77",
    ssn: str | None = None,
    phone: str | None = "+1 617 555 0100",
    email: str | None = None,
    postal_code: str = "02134",
    **extra,
) -> dict:
    identifiers = []
    if mrn:
        identifiers.append({"system": MRN_SYSTEM, "value": mrn, "type": "MR", "use": "usual"})
    if ssn:
        identifiers.append({"system": SSN_SYSTEM, "value": ssn, "type": "SS"})
    contacts = []
    if phone:
        contacts.append({"system": "phone", "value": phone, "use": "home"})
    if email:
        contacts.append({"system": "email", "value": email})
    return {
        "names": [{"use": "official", "family": family, "given": given or ["John"]}],
        "identifiers": identifiers,
        "addresses": [
            {
                "line": ["1 Main St"],
                "city": "Boston",
                "state": "MA",
                "postal_code": postal_code,
                "country": "US",
            }
        ],
        "contacts": contacts,
        "gender": gender,
        "birth_date": birth_date,
        **extra,
    }


def errors_of(response) -> list[dict]:
    body = response.json()
    assert set(body) == {"errors"}, body
    assert body["errors"], body
    for item in body["errors"]:
        assert {"field", "code", "message"} <= set(item), item
    return body["errors"]


def error_fields(response) -> set:
    return {e["field"] for e in errors_of(response)}
