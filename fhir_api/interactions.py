"""The Patient interactions, independent of HTTP: the views and the Bundle processor call these.

Each returns an ``Outcome`` (status, resource, headers) or raises ``FhirError`` / the
services' errors; the caller renders them. Writes go through ``patients.services`` only.
http://hl7.org/fhir/R4/http.html
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl
from uuid import UUID

from django.utils.http import http_date
from rest_framework import exceptions

from fhir_api.errors import FhirError, issue, operation_outcome
from fhir_api.history import patient_history
from fhir_api.mapping import full_url, patient_from_fhir, patient_to_fhir
from mpi.api import parse_if_match
from patients import services
from patients.children import one_with_children
from patients.codes import MERGE_LINK_TYPES
from patients.models import Patient

# The permission each interaction needs (also used for Bundle entries).
READ = "patients.view_patient"
CREATE = "patients.add_patient"
UPDATE = "patients.change_patient"
DELETE = "patients.delete_patient"
HISTORY = "patients.view_historicalpatient"


@dataclass
class Outcome:
    status: int
    resource: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    patient: Patient | None = None


def parse_id(value: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise FhirError(404, "not-found", f"No Patient/{value}: ids on this server are UUIDs.") from None


def load_patient(id: str, *, allow_deleted: bool = False) -> Patient:
    """The patient with its children; 404 when unknown, 410 when deleted (unless allowed)."""
    patient = one_with_children(uuid=parse_id(id))
    if patient is None:
        raise FhirError(404, "not-found", f"No Patient/{id}.")
    if patient.deleted_at is not None and not allow_deleted:
        raise FhirError(
            410,
            "deleted",
            f"Patient/{id} was deleted at {patient.deleted_at.isoformat()}; a steward can restore it.",
        )
    return patient


def version_headers(*, version: int, last_modified: datetime, location: str | None = None) -> dict[str, str]:
    headers = {"ETag": f'W/"{version}"', "Last-Modified": http_date(last_modified.timestamp())}
    if location:
        headers["Location"] = location
    return headers


def _result(patient: Patient, *, base_url: str, status: int) -> Outcome:
    patient = one_with_children(pk=patient.pk)
    location = (
        f"{full_url(base_url, patient.uuid)}/_history/{patient.version}" if status in (200, 201) else None
    )
    return Outcome(
        status=status,
        resource=patient_to_fhir(patient, base_url=base_url),
        headers=version_headers(version=patient.version, last_modified=patient.updated_at, location=location),
        patient=patient,
    )


def _if_match(value: str | None, expression: str = "If-Match") -> int | None:
    try:
        return parse_if_match(value)
    except exceptions.ValidationError:
        raise FhirError(
            400, "invalid", f'{expression}: expected the ETag you read, e.g. W/"3".', expression=[expression]
        ) from None


# --- Conditional interactions: only ``identifier`` criteria ------------------------------


def parse_identifier_criteria(
    query: str | list[tuple[str, str]], *, expression: str
) -> list[tuple[str, str]]:
    """``identifier=system|value`` pairs of a conditional request (all must match).

    A token without ``|`` matches the value in any system. Other parameters are refused:
    a condition the server does not understand must not be ignored.
    """
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query)
    criteria = []
    for name, value in pairs:
        if name in ("_format",):
            continue
        if name != "identifier":
            raise FhirError(
                400,
                "not-supported",
                f"Conditional requests support the identifier parameter only, not {name!r}.",
                expression=[expression],
            )
        system, bar, code = value.partition("|")
        if not bar:
            system, code = "", value
        if not code:
            raise FhirError(
                400, "invalid", "identifier needs a value: system|value.", expression=[expression]
            )
        criteria.append((system, code))
    if not criteria:
        raise FhirError(
            400, "invalid", "The condition is empty: give identifier=system|value.", expression=[expression]
        )
    return criteria


def find_by_identifiers(criteria: list[tuple[str, str]]) -> list[Patient]:
    """Live patients matching every criterion; at most two (enough to tell one from many)."""
    patients = Patient.objects.all()
    for system, value in criteria:
        if system:
            patients = patients.filter(pk__in=Patient.objects.with_identifier(system, value).values("pk"))
        else:
            patients = patients.filter(identifiers__value=value, identifiers__live=True)
    return list(patients.distinct().order_by("pk")[:2])


# --- Interactions -------------------------------------------------------------------------


def read_patient(*, id: str, base_url: str) -> Outcome:
    patient = load_patient(id)
    return Outcome(
        status=200,
        resource=patient_to_fhir(patient, base_url=base_url),
        headers=version_headers(version=patient.version, last_modified=patient.updated_at),
        patient=patient,
    )


def vread_patient(*, id: str, vid: str, base_url: str) -> Outcome:
    """A past version; 404 for an unknown version, 410 for the version that deleted it."""
    patient = load_patient(id, allow_deleted=True)
    version = next((v for v in patient_history(patient) if str(v.version) == vid), None)
    if version is None:
        raise FhirError(404, "not-found", f"Patient/{id} has no version {vid}.")
    if version.resource is None:
        raise FhirError(410, "deleted", f"Version {vid} of Patient/{id} is its deletion.")
    return Outcome(
        status=200,
        resource=version.resource,
        headers=version_headers(version=version.version, last_modified=version.at),
        patient=patient,
    )


def create_patient(
    *, resource: dict, user, base_url: str, reason: str = "", if_none_exist: str | None = None
) -> Outcome:
    """Register; with ``If-None-Exist`` return the one existing match (200) instead, 412 if several."""
    data = patient_from_fhir(resource)
    if if_none_exist:
        matches = find_by_identifiers(parse_identifier_criteria(if_none_exist, expression="If-None-Exist"))
        if len(matches) > 1:
            raise FhirError(
                412, "multiple-matches", "Several patients match If-None-Exist.", expression=["If-None-Exist"]
            )
        if matches:
            return _result(matches[0], base_url=base_url, status=200)
    patient = services.register_patient(data=data, actor=user, reason=reason or "Registered through FHIR")
    return _result(patient, base_url=base_url, status=201)


def update_patient(
    *, id: str, resource: dict, user, base_url: str, reason: str = "", if_match: str | None = None
) -> Outcome:
    """Replace the patient (PUT). The body's id must be the URL's; If-Match guards against lost updates."""
    if not isinstance(resource, dict) or resource.get("id") != id:
        raise FhirError(
            400,
            "invalid",
            f"The body of PUT Patient/{id} must be a Patient with id {id!r} (it has {resource.get('id')!r}).",
            expression=["Patient.id"],
        )
    try:
        patient = load_patient(id)
    except FhirError as exc:
        if exc.status != 404:
            raise
        raise FhirError(
            405,
            "not-supported",
            f"Patient/{id} does not exist, and this server assigns ids itself: create with POST /Patient "
            "(updateCreate is false).",
        ) from None
    return _update(patient, resource, user=user, base_url=base_url, reason=reason, if_match=if_match)


def _update(
    patient: Patient, resource: dict, *, user, base_url: str, reason: str, if_match: str | None
) -> Outcome:
    expected = _if_match(if_match)
    merge_links = [
        (link.type, link.other.uuid) for link in patient.links.all() if link.type in MERGE_LINK_TYPES
    ]
    data = patient_from_fhir(resource, allowed_merge_links=merge_links)
    services.update_patient(
        patient=patient,
        data=data,
        expected_version=expected,
        actor=user,
        reason=reason or "Updated through FHIR",
    )
    return _result(patient, base_url=base_url, status=200)


def conditional_update(
    *,
    query: str | list[tuple[str, str]],
    resource: dict,
    user,
    base_url: str,
    reason: str = "",
    if_match: str | None = None,
) -> Outcome:
    """``PUT Patient?identifier=system|value``: update the one match, create when none, 412 when several."""
    matches = find_by_identifiers(parse_identifier_criteria(query, expression="Patient?identifier"))
    if len(matches) > 1:
        raise FhirError(
            412, "multiple-matches", "Several patients match the condition.", expression=["identifier"]
        )
    if not matches:
        if resource.get("id"):
            raise FhirError(
                400,
                "invalid",
                "No patient matches; a new one cannot take a client-chosen id.",
                expression=["Patient.id"],
            )
        return create_patient(resource=resource, user=user, base_url=base_url, reason=reason)
    patient = Patient.all_objects.with_children().get(pk=matches[0].pk)
    if resource.get("id") not in (None, str(patient.uuid)):
        raise FhirError(
            400,
            "invalid",
            f"The condition matches Patient/{patient.uuid}, but the body has id {resource['id']!r}.",
            expression=["Patient.id"],
        )
    return _update(patient, resource, user=user, base_url=base_url, reason=reason, if_match=if_match)


def delete_patient(*, id: str, user, reason: str = "", if_match: str | None = None) -> Outcome:
    """Soft delete (204). Deleting a deleted patient changes nothing and is not an error."""
    patient = load_patient(id, allow_deleted=True)
    if patient.deleted_at is None:
        services.delete_patient(
            patient=patient,
            actor=user,
            reason=reason or "Deleted through FHIR",
            expected_version=_if_match(if_match),
        )
    return Outcome(status=204)


def prefer_body(outcome: Outcome, prefer: str | None) -> dict | None:
    """The body a write returns under ``Prefer: return=minimal|representation|OperationOutcome``."""
    wanted = ""
    for part in (prefer or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "return":
            wanted = value.strip().strip('"')
    if wanted == "minimal":
        return None
    if wanted == "OperationOutcome":
        text = {201: "Created", 200: "Done", 204: "Deleted"}.get(outcome.status, "Done")
        where = f" Patient/{outcome.patient.uuid}" if outcome.patient is not None else ""
        return operation_outcome([issue("informational", f"{text}{where}.", severity="information")])
    return outcome.resource
