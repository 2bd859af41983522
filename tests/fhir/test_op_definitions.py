"""The operations in the CapabilityStatement and their OperationDefinitions."""

import pytest

from tests.fhir.conftest import BASE, outcome_issues

pytestmark = pytest.mark.django_db


def test_capability_statement_lists_the_operations(anonymous):
    body = anonymous.get(f"{BASE}/metadata").json()
    patient = next(r for r in body["rest"][0]["resource"] if r["type"] == "Patient")
    operations = {o["name"]: o["definition"] for o in patient["operation"]}
    assert operations["match"] == "http://hl7.org/fhir/OperationDefinition/Patient-match"
    assert operations["merge"] == "http://hl7.org/fhir/OperationDefinition/Patient-merge"
    assert operations["ihe-pix"] == "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"
    assert operations["unmerge"].endswith("OperationDefinition/Patient-unmerge")


def test_operation_definitions_are_served(anonymous):
    for key, code in [
        ("Patient-match", "match"),
        ("Patient-merge", "merge"),
        ("Patient-unmerge", "unmerge"),
        ("Patient-ihe-pix", "ihe-pix"),
    ]:
        response = anonymous.get(f"{BASE}/OperationDefinition/{key}")
        assert response.status_code == 200
        body = response.json()
        assert body["resourceType"] == "OperationDefinition" and body["code"] == code
        assert body["url"] == f"http://testserver/fhir/OperationDefinition/{key}"
    missing = anonymous.get(f"{BASE}/OperationDefinition/Patient-everything")
    assert missing.status_code == 404
    assert "Patient-merge" in outcome_issues(missing)[0]["diagnostics"]
