"""Who may do what, per role, through the REST API (PERMISSIONS in patients/api/views.py)."""

import pytest
from rest_framework.test import APIClient

from patients.models import Patient
from patients.services import delete_patient
from tests.factories import MRN_SYSTEM
from tests.patients.api.helpers import PATIENTS, detail, errors_of, patient_body, token_client

pytestmark = pytest.mark.django_db

ROLES = ("integrator", "steward", "auditor", "clerk", "outsider")


def _request(client, operation: str, patient: Patient):
    url = detail(patient.uuid)
    if operation == "list":
        return client.get(PATIENTS)
    if operation == "retrieve":
        return client.get(url)
    if operation == "create":
        return client.post(PATIENTS, patient_body(mrn="900"), format="json")
    if operation == "update":
        return client.put(url, patient_body(mrn="501", family="Jones"), format="json", HTTP_IF_MATCH="1")
    if operation == "partial_update":
        return client.patch(url, {"gender": "other"}, format="json", HTTP_IF_MATCH="1")
    if operation == "destroy":
        return client.delete(url)
    if operation == "restore":
        delete_patient(patient=patient)
        return client.post(f"{url}restore/", {}, format="json")
    if operation == "history":
        return client.get(f"{url}history/")
    if operation == "resolve":
        return client.get("/api/v1/identifiers/resolve/", {"system": MRN_SYSTEM, "value": "501"})
    raise AssertionError(operation)


ALLOWED = {
    "list": {"integrator", "steward", "auditor", "clerk"},
    "retrieve": {"integrator", "steward", "auditor", "clerk"},
    "resolve": {"integrator", "steward", "auditor", "clerk"},
    "create": {"integrator", "steward", "clerk"},
    "update": {"integrator", "steward", "clerk"},
    "partial_update": {"integrator", "steward", "clerk"},
    "destroy": {"steward", "clerk"},
    "restore": {"steward"},
    "history": {"steward", "auditor", "clerk"},
}


@pytest.mark.parametrize("operation", sorted(ALLOWED))
@pytest.mark.parametrize("role", ROLES)
def test_role_permission_matrix(request, role, operation, jones):
    client = token_client(request.getfixturevalue(role))
    response = _request(client, operation, jones)
    if role in ALLOWED[operation]:
        assert response.status_code in (200, 201, 204), (role, operation, response.content)
    else:
        assert response.status_code == 403, (role, operation, response.content)
        [error] = errors_of(response)
        assert error["code"] == "permission-denied"
        assert "needs the permission patients." in error["message"]


@pytest.mark.parametrize("operation", sorted(ALLOWED))
def test_anonymous_requests_are_401(operation, jones):
    response = _request(APIClient(), operation, jones)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert errors_of(response)[0]["code"] == "not-authenticated"


def test_superuser_may_do_everything(as_admin, jones):
    assert as_admin.get(f"{detail(jones.uuid)}history/").status_code == 200
    assert as_admin.delete(detail(jones.uuid)).status_code == 204
    assert as_admin.post(f"{detail(jones.uuid)}restore/", {}, format="json").status_code == 200


def test_browser_session_authenticates(integrator, jones):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(integrator)
    assert client.get(detail(jones.uuid)).status_code == 200
    # Session writes need the CSRF token, as any browser form does.
    response = client.post(PATIENTS, patient_body(mrn="901"), format="json")
    assert response.status_code == 403
    assert "CSRF" in errors_of(response)[0]["message"]
