"""/api/v1/organizations/: read-only, every role, the UUIDs a patient's managing_organization takes."""

from __future__ import annotations

from uuid import uuid4

import pytest
from rest_framework.test import APIClient

from patients.services import register_patient
from tests.factories import OrganizationFactory, patient_data
from tests.patients.api.helpers import errors_of, patient_body

pytestmark = pytest.mark.django_db

URL = "/api/v1/organizations/"


@pytest.fixture
def orgs():
    return [
        OrganizationFactory(name="Mercy Hospital", identifier_system="urn:oid:1.2.3.100"),
        OrganizationFactory(name="Harbor Health", identifier_system=""),
        OrganizationFactory(name="Old Town Practice", identifier_system="urn:oid:1.2.3.300", active=False),
    ]


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [o["name"] for o in response.json()["results"]]


def test_list_and_read_give_the_uuid_a_patient_can_name(as_integrator, orgs):
    listed = as_integrator.get(URL)
    assert names(listed) == ["Harbor Health", "Mercy Hospital", "Old Town Practice"]
    mercy = listed.json()["results"][1]
    assert mercy == {
        "id": str(orgs[0].uuid),
        "name": "Mercy Hospital",
        "identifier_system": "urn:oid:1.2.3.100",
        "active": True,
    }
    assert as_integrator.get(f"{URL}{mercy['id']}/").json() == mercy
    body = {**patient_body(), "managing_organization": mercy["id"]}
    created = as_integrator.post("/api/v1/patients/", body)
    assert created.status_code == 201, created.content
    assert created.json()["managing_organization"] == mercy["id"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("name=HOSP", ["Mercy Hospital"]),
        ("name=town", ["Old Town Practice"]),
        ("identifier_system=urn:oid:1.2.3.300", ["Old Town Practice"]),
        ("identifier_system=urn:oid:1.2.3", []),
        ("active=false", ["Old Town Practice"]),
        ("active=true", ["Harbor Health", "Mercy Hospital"]),
    ],
)
def test_filters(as_integrator, orgs, query, expected):
    assert names(as_integrator.get(f"{URL}?{query}")) == expected


def test_every_role_reads_nobody_writes_and_strangers_are_refused(
    as_integrator, as_clerk, as_steward, as_auditor, as_outsider, orgs
):
    for client in (as_integrator, as_clerk, as_steward, as_auditor):
        assert client.get(URL).status_code == 200
    assert as_steward.post(URL, {"name": "New"}).status_code == 405
    assert as_steward.delete(f"{URL}{orgs[0].uuid}/").status_code == 405
    refused = as_outsider.get(URL)
    assert refused.status_code == 403 and "patients.view_organization" in errors_of(refused)[0]["message"]
    assert APIClient().get(URL).status_code == 401


def test_unknown_or_malformed_ids_are_404(as_integrator, orgs):
    assert as_integrator.get(f"{URL}{uuid4()}/").status_code == 404
    assert as_integrator.get(f"{URL}not-a-uuid/").status_code == 404


@pytest.mark.parametrize(
    ("query", "field"), [("active=maybe", "active"), ("name=" + "x" * 201, "name"), ("name=a%00", "name")]
)
def test_a_bad_filter_value_is_a_400(as_integrator, orgs, query, field):
    response = as_integrator.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert errors_of(response)[0]["field"] == field


def test_the_patient_list_filters_by_managing_organization(as_integrator, orgs, clerk):
    managed = register_patient(data=patient_data(mrn="1", managing_organization=orgs[0].uuid), actor=clerk)
    register_patient(data=patient_data(mrn="2", family="Other"), actor=clerk)
    by_org = "/api/v1/patients/?managing_organization="
    found = as_integrator.get(f"{by_org}{orgs[0].uuid}").json()["results"]
    assert [p["id"] for p in found] == [str(managed.uuid)]
    assert as_integrator.get(f"{by_org}{orgs[1].uuid}").json()["results"] == []
    refused = as_integrator.get(f"{by_org}mercy")
    assert refused.status_code == 400 and errors_of(refused)[0]["field"] == "managing_organization"
