"""The base every /fhir/ endpoint shares: auth, formats, and errors as OperationOutcome."""

import pytest

from tests.fhir.conftest import BASE, FHIR_JSON, outcome_issues, patient_resource

pytestmark = pytest.mark.django_db


def test_metadata_is_public_and_says_r4(anonymous):
    response = anonymous.get(f"{BASE}/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    patient = body["rest"][0]["resource"][0]
    assert patient["type"] == "Patient"
    assert patient["updateCreate"] is False
    codes = {i["code"] for i in patient["interaction"]}
    assert {"read", "vread", "update", "delete", "create", "history-instance", "history-type"} <= codes
    assert {i["code"] for i in body["rest"][0]["interaction"]} == {"transaction", "batch"}


@pytest.mark.parametrize(
    "path", ["/fhir/Observation", "/fhir/Patient/abc/def/ghi", "/fhir/Patient/", "/fhir/metadata/"]
)
def test_unknown_paths_answer_an_operation_outcome_404(as_integrator, path):
    response = as_integrator.get(path)
    assert response.status_code == 404
    assert outcome_issues(response)[0]["code"] == "not-found"


def test_wrong_method_is_a_405_operation_outcome(as_integrator):
    response = as_integrator.patch(f"{BASE}/metadata", {})
    assert response.status_code == 405
    assert outcome_issues(response)[0]["code"] == "not-supported"


def test_anonymous_read_is_401_with_a_reason(anonymous, smith):
    response = anonymous.get(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    issue = outcome_issues(response)[0]
    assert issue["code"] == "login"
    assert "Authorization" in issue["diagnostics"]


def test_bad_token_is_401(smith):
    from tests.fhir.conftest import FhirClient

    response = FhirClient("mpi_not-a-real-token").get(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 401
    assert outcome_issues(response)[0]["code"] == "login"


def test_role_without_permission_is_403_naming_it(as_outsider, smith):
    response = as_outsider.get(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 403
    issue = outcome_issues(response)[0]
    assert issue["code"] == "forbidden"
    assert "patients.view_patient" in issue["diagnostics"]


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", FHIR_JSON, FHIR_JSON),
        ("", "application/json", "application/json"),
        ("", "*/*", FHIR_JSON),
        ("", "text/html,application/xhtml+xml,*/*;q=0.8", FHIR_JSON),
        ("?_format=json", "application/json", FHIR_JSON),
        ("?_format=application/fhir+json", "", FHIR_JSON),
        ("?_format=application/json", "", "application/json"),
    ],
)
def test_json_formats(as_integrator, smith, query, accept, expected):
    response = as_integrator.get(f"{BASE}/Patient/{smith.uuid}{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == expected
    assert response.json()["id"] == str(smith.uuid)


@pytest.mark.parametrize(
    ("query", "accept"),
    [("", "application/fhir+xml"), ("?_format=xml", FHIR_JSON), ("?_format=application/fhir+xml", "")],
)
def test_xml_is_not_acceptable(as_integrator, smith, query, accept):
    response = as_integrator.get(f"{BASE}/Patient/{smith.uuid}{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert response["Content-Type"].startswith(FHIR_JSON)
    assert outcome_issues(response)[0]["code"] == "not-supported"


def test_xml_body_is_unsupported_media_type(as_integrator):
    response = as_integrator.post(
        f"{BASE}/Patient", "<Patient xmlns='http://hl7.org/fhir'/>", content_type="application/fhir+xml"
    )
    assert response.status_code == 415
    assert outcome_issues(response)[0]["code"] == "not-supported"


def test_malformed_json_is_400_structure(as_integrator):
    response = as_integrator.post(f"{BASE}/Patient", '{"resourceType": "Patient", ', content_type=FHIR_JSON)
    assert response.status_code == 400
    assert outcome_issues(response)[0]["code"] == "structure"


def test_plain_json_body_is_accepted(as_integrator):
    response = as_integrator.post(f"{BASE}/Patient", patient_resource(), content_type="application/json")
    assert response.status_code == 201, response.json()


def test_capability_registry_is_idempotent_and_listed(anonymous, monkeypatch):
    from fhir_api import capability

    monkeypatch.setattr(capability, "SEARCH_PARAMS", list(capability.SEARCH_PARAMS))
    monkeypatch.setattr(capability, "OPERATIONS", list(capability.OPERATIONS))
    for _ in range(2):
        capability.register_search_param("zz-test", "token", "A test parameter.")
        capability.register_operation("zz-op", "http://example.org/OperationDefinition/zz-op")
    patient = anonymous.get(f"{BASE}/metadata").json()["rest"][0]["resource"][0]
    assert [p["name"] for p in patient["searchParam"]].count("zz-test") == 1
    assert [o["name"] for o in patient["operation"]].count("zz-op") == 1


def test_get_patient_type_delegates_to_search(as_integrator, smith):
    response = as_integrator.get(f"{BASE}/Patient", {"family": "Smith"})
    assert response.status_code == 200
    assert response.json()["type"] == "searchset"


def test_head_needs_the_read_permission(as_outsider, as_integrator, smith):
    assert as_outsider.head(f"{BASE}/Patient/{smith.uuid}").status_code == 403
    response = as_integrator.head(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 200
    assert response["ETag"] == 'W/"1"'


def test_405_says_which_methods_are_allowed(as_integrator, smith):
    response = as_integrator.post(f"{BASE}/Patient/{smith.uuid}", patient_resource())
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) >= {"GET", "PUT", "DELETE"}
    assert outcome_issues(response)[0]["code"] == "not-supported"
