"""Walk the permission matrix (tests/security/matrix.py): every endpoint as every role.

An allowed request may answer anything but an auth refusal (and never a 500, a 404 or
a 405: the world below holds every object a path names). A refused one answers:

- REST: 401 (anonymous) or 403, with the reason in the error body;
- FHIR: the same statuses with an OperationOutcome whose diagnostics say why;
- pages and admin: a redirect to the login page for anonymous users (and, in the
  admin, for users who are not staff), else 403 with the "not allowed" page;

and, on paths that touch patient data, leaves an AuditEvent with outcome "denied".

Speed: the users, tokens, sessions and patients are made once per module inside an
outer transaction that is rolled back at the end; each test runs in a savepoint of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client

from accounts.services import issue_token
from audit.middleware import touches_patient_data
from audit.models import AuditEvent
from matching.merging import merge_patients
from patients.roles import ROLE_PERMISSIONS
from patients.services import delete_patient, register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.fhir.conftest import patient_resource
from tests.matching.pages import NO_STATIC_WARNING, make_pair
from tests.patients.api.helpers import patient_body
from tests.security.matrix import MATRIX, ROLES, STAFF, Capability, Endpoint, cases

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings(NO_STATIC_WARNING)]

PASSWORD = "correct-horse-battery"
JSON = "application/json"
FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"
LOGIN = settings.LOGIN_URL
# What an allowed request may answer (302 only from pages and the admin, and never to the login).
ALLOWED_STATUSES = {200, 201, 204, 302, 400, 409, 410, 412, 422}


@dataclass
class World:
    values: dict[str, str]  # the path placeholders
    versions: dict[str, int]
    tokens: dict[str, str]  # role -> plain API token
    sessions: dict[str, str]  # role -> session key


def _user(role: str) -> User:
    if role == "superuser":
        return User.objects.create_superuser("matrix-superuser", "su@example.org", PASSWORD)
    user = User.objects.create_user(f"matrix-{role}", password=PASSWORD, is_staff=role in STAFF)
    if role != "outsider":
        user.groups.add(Group.objects.get(name=role))
    return user


def _build_world() -> World:
    users = {role: _user(role) for role in ROLES if role != "anonymous"}
    clerk, steward = users["clerk"], users["steward"]
    candidate = make_pair(clerk)  # John Smith (MRN 77) and Jon Smyth elsewhere: an open candidate
    a, b = candidate.patient_a, candidate.patient_b
    survivor = register_patient(data=patient_data(family="Brown", given=("Ann",), mrn="300"), actor=clerk)
    duplicate = register_patient(data=patient_data(family="Brown", given=("Anne",), mrn="301"), actor=clerk)
    merge = merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason="same woman")
    deleted = register_patient(data=patient_data(family="Gone", given=("Gail",), mrn="400"), actor=clerk)
    delete_patient(patient=deleted, actor=clerk, reason="registered by mistake")
    sessions = {}
    for role, user in users.items():
        client = Client()
        client.force_login(user)
        sessions[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return World(
        values={
            "patient": str(a.uuid),
            "patient_pk": str(a.pk),
            "deleted": str(deleted.uuid),
            "deleted_pk": str(deleted.pk),
            "candidate": str(candidate.uuid),
            "a": str(a.uuid),
            "b": str(b.uuid),
            "merge": str(merge.uuid),
            "mrn_system": MRN_SYSTEM,
            "mrn": "77",
            "other": str(b.uuid),
            "audit_event": str(AuditEvent.objects.latest("id").pk),
        },
        versions={"patient": a.version},
        tokens={role: issue_token(user=user, name="matrix")[1] for role, user in users.items()},
        sessions=sessions,
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        yield _build_world()
        transaction.set_rollback(True)  # nothing of this module outlives it


# --- Request bodies ----------------------------------------------------------------------


def _fhir_update(w: World) -> dict:
    return {**patient_resource(family="Smith", mrn="77"), "id": w.values["patient"]}


def _params(*parameters: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": list(parameters)}


# name -> (content type, body from the world, extra headers from the world)
BODIES = {
    "rest-patient": (JSON, lambda w: patient_body(family="Newman", mrn="900")),
    "rest-probe": (JSON, lambda w: patient_body(mrn=None)),
    "rest-patient-update": (JSON, lambda w: {**patient_body(), "version": w.versions["patient"]}),
    "rest-patch": (JSON, lambda w: {"gender": "other", "version": w.versions["patient"]}),
    "if-match": (None, None, lambda w: {"If-Match": f'W/"{w.versions["patient"]}"'}),
    "reason": (JSON, lambda w: {"reason": "matrix test"}),
    "decide-not-duplicate": (JSON, lambda w: {"decision": "not-duplicate", "reason": "matrix test"}),
    "decide-merge": (JSON, lambda w: {"decision": "merge", "reason": "matrix test"}),
    "rest-merge": (
        JSON,
        lambda w: {"survivor": w.values["patient"], "duplicate": w.values["other"], "reason": "matrix test"},
    ),
    "fhir-patient": (FHIR_JSON, lambda w: patient_resource(family="Newman", mrn="901")),
    "fhir-patient-update": (
        FHIR_JSON,
        _fhir_update,
        lambda w: {"If-Match": f'W/"{w.versions["patient"]}"'},
    ),
    "fhir-search-form": (FORM, lambda w: "family=smith"),
    "fhir-match": (
        FHIR_JSON,
        lambda w: _params({"name": "resource", "resource": patient_resource(mrn=None)}),
    ),
    "fhir-pix": (
        FHIR_JSON,
        lambda w: _params({"name": "sourceIdentifier", "valueString": f"{MRN_SYSTEM}|77"}),
    ),
    "fhir-transaction": (
        FHIR_JSON,
        lambda w: {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:6f1c7c36-0b5e-4d39-9d5f-3f2b1e0a9c11",
                    "resource": patient_resource(family="Newman", mrn="902"),
                    "request": {"method": "POST", "url": "Patient"},
                }
            ],
        },
    ),
    "fhir-merge": (
        FHIR_JSON,
        lambda w: _params(
            {"name": "source-patient", "valueReference": {"reference": f"Patient/{w.values['other']}"}},
            {"name": "target-patient", "valueReference": {"reference": f"Patient/{w.values['patient']}"}},
            {"name": "reason", "valueString": "matrix test"},
        ),
    ),
    "fhir-unmerge": (
        FHIR_JSON,
        lambda w: _params(
            {"name": "merge", "valueString": w.values["merge"]},
            {"name": "reason", "valueString": "matrix test"},
        ),
    ),
    "empty-form": (FORM, lambda w: ""),
    "reason-form": (FORM, lambda w: urlencode({"confirm": "yes", "reason": "matrix test"})),
    "soft-delete-action": (
        FORM,
        lambda w: urlencode({"action": "soft_delete_selected", "_selected_action": w.values["patient_pk"]}),
    ),
    "restore-action": (
        FORM,
        lambda w: urlencode({"action": "restore_selected", "_selected_action": w.values["deleted_pk"]}),
    ),
    "purge-action": (
        FORM,
        lambda w: urlencode({"action": "purge_selected", "_selected_action": w.values["deleted_pk"]}),
    ),
    "link-form": (FORM, lambda w: urlencode({"link-reason": "matrix test"})),
    "not-duplicate-form": (FORM, lambda w: urlencode({"notdup-reason": "matrix test"})),
    "merge-form": (FORM, lambda w: urlencode({"reason": "matrix test"})),
    "unmerge-form": (FORM, lambda w: urlencode({"reason": "matrix test"})),
}


def send(world: World, endpoint: Endpoint, role: str):
    client = Client()
    headers: dict[str, str] = {}
    if role != "anonymous":
        if endpoint.interface in ("rest", "fhir"):
            headers["Authorization"] = f"Bearer {world.tokens[role]}"
        else:
            client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[role]
    if endpoint.interface == "fhir":
        headers["Accept"] = FHIR_JSON
    content_type, data = JSON, ""
    if endpoint.body:
        content_type, make, *extra = BODIES[endpoint.body]
        if make is not None:
            data = make(world)
            if not isinstance(data, str):
                data = json.dumps(data)
        if extra:
            headers.update(extra[0](world))
    path = endpoint.path.format(**world.values)
    return client.generic(endpoint.method, path, data, content_type=content_type or JSON, headers=headers)


# --- The walk ----------------------------------------------------------------------------


def _login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(f"{LOGIN}?next=")


def _describe(response) -> str:
    location = f" -> {response['Location']}" if response.has_header("Location") else ""
    return f"{response.status_code}{location}: {response.content[:600]!r}"


def assert_refused(endpoint: Endpoint, role: str, response) -> None:
    said = _describe(response)
    if endpoint.interface in ("rest", "fhir"):
        expected = 401 if role == "anonymous" else 403
        assert response.status_code == expected, said
        if endpoint.interface == "rest":
            (error,) = response.json()["errors"]
            reason = error["message"]
        else:
            body = response.json()
            assert body["resourceType"] == "OperationOutcome", said
            reason = body["issue"][0]["diagnostics"]
            assert body["issue"][0]["code"] == ("login" if role == "anonymous" else "forbidden"), said
        if role == "anonymous":
            assert response.has_header("WWW-Authenticate"), said
            assert "Authentication" in reason or "credentials" in reason, said
        else:
            assert "permission" in reason, said  # it names the permission the role lacks
        return
    if role == "anonymous" or (endpoint.interface == "admin" and role not in STAFF):
        assert _login_redirect(response), said
        return
    assert response.status_code == 403, said
    assert "You may not open this page" in response.content.decode(), said


@pytest.mark.parametrize(
    ("capability", "endpoint", "role"),
    [pytest.param(*case, id=f"{case[1].label} as {case[2]}") for case in cases()],
)
def test_role_matrix(world, capability: Capability, endpoint: Endpoint, role: str):
    denied_before = AuditEvent.objects.filter(outcome="denied").count()

    response = send(world, endpoint, role)

    if role in capability.allowed(endpoint):
        said = _describe(response)
        assert response.status_code in ALLOWED_STATUSES, said
        assert not _login_redirect(response), said
        assert response.status_code != 302 or endpoint.interface in ("pages", "admin"), said
        return
    assert_refused(endpoint, role, response)
    if touches_patient_data(endpoint.path.split("?")[0].format(**world.values)):
        denied = AuditEvent.objects.filter(outcome="denied").order_by("-id")
        assert denied.count() == denied_before + 1, "the refusal was not audited"
        event = denied.first()
        assert (event.status_code, event.method) == (response.status_code, endpoint.method)
        assert event.username == ("" if role == "anonymous" else f"matrix-{role}")


# --- The matrix itself -------------------------------------------------------------------


def test_every_body_named_by_the_matrix_exists_and_every_body_is_used():
    named = {e.body for cap in MATRIX for e in cap.endpoints if e.body}
    assert named == set(BODIES)


def test_no_endpoint_is_listed_twice():
    seen = [(e.interface, e.method, e.path, e.body) for cap in MATRIX for e in cap.endpoints]
    assert len(seen) == len(set(seen))


def test_the_admin_role_holds_every_other_roles_permissions():
    others = set().union(*(codes for role, codes in ROLE_PERMISSIONS.items() if role != "admin"))
    assert others <= ROLE_PERMISSIONS["admin"]
    assert "patients.purge_patient" not in ROLE_PERMISSIONS["admin"]  # purge stays with superusers


def test_the_readme_table_is_the_rendered_matrix():
    from tests.security.matrix import render_readme_table

    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    start, end = "<!-- roles-matrix:start -->\n", "<!-- roles-matrix:end -->"
    assert start in readme and end in readme, "README lacks the roles-matrix markers"
    table = readme.split(start, 1)[1].split(end, 1)[0]
    assert table == render_readme_table(), "README table drifted: run `python -m tests.security.matrix`"
