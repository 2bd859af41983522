"""GET /fhir/Organization[/<id>]: the facilities a Patient's managingOrganization names."""

from __future__ import annotations

from uuid import uuid4

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.organization import Organization as R4BOrganization

from patients.services import register_patient
from tests.factories import OrganizationFactory, patient_data
from tests.fhir.conftest import BASE, outcome_issues

pytestmark = pytest.mark.django_db


@pytest.fixture
def orgs():
    return [
        OrganizationFactory(name="Mercy Hospital", identifier_system="urn:oid:1.2.3.100"),
        OrganizationFactory(name="Harbor Community Health Center", identifier_system="urn:oid:1.2.3.200"),
        OrganizationFactory(name="St. Mary's Clinic", identifier_system=""),
        OrganizationFactory(name="Old Town Practice", identifier_system="urn:oid:1.2.3.400", active=False),
        OrganizationFactory(name="Lakeside Hospital", identifier_system="https://lakeside.example.org/mrn"),
    ]


def names(response) -> list[str]:
    body = response.json()
    assert response.status_code == 200, body
    Bundle.model_validate(body)
    return [e["resource"]["name"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]


def test_read_gives_a_valid_organization_with_its_identifier_namespace(as_integrator, orgs):
    response = as_integrator.get(f"{BASE}/Organization/{orgs[0].uuid}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    R4BOrganization.model_validate(body)
    assert body == {
        "resourceType": "Organization",
        "id": str(orgs[0].uuid),
        "active": True,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3.100"}],
        "name": "Mercy Hospital",
    }
    no_namespace = as_integrator.get(f"{BASE}/Organization/{orgs[2].uuid}").json()
    assert "identifier" not in no_namespace


def test_a_patients_managing_organization_reference_resolves(as_integrator, orgs, clerk):
    patient = register_patient(
        data=patient_data(managing_organization=orgs[1].uuid), actor=clerk, reason="seed"
    )
    resource = as_integrator.get(f"{BASE}/Patient/{patient.uuid}").json()
    reference = resource["managingOrganization"]
    followed = as_integrator.get(f"{BASE}/{reference['reference']}")
    assert followed.status_code == 200
    assert followed.json()["name"] == reference["display"] == "Harbor Community Health Center"


@pytest.mark.parametrize("id_", [str(uuid4()), "not-a-uuid", "123"])
def test_an_unknown_organization_is_a_404_outcome(as_integrator, orgs, id_):
    response = as_integrator.get(f"{BASE}/Organization/{id_}")
    assert response.status_code == 404
    assert outcome_issues(response)[0]["code"] == "not-found"


def test_every_role_may_read_organizations_and_anonymous_may_not(
    anonymous, as_outsider, as_steward, as_auditor, orgs
):
    url = f"{BASE}/Organization/{orgs[0].uuid}"
    assert anonymous.get(url).status_code == 401
    assert as_outsider.get(url).status_code == 403
    assert as_steward.get(url).status_code == 200 and as_auditor.get(url).status_code == 200
    assert as_steward.put(url, {"resourceType": "Organization"}).status_code == 405


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["Harbor Community Health Center", "Lakeside Hospital", "Mercy Hospital", "Old Town Practice",
              "St. Mary's Clinic"]),
        ("name=merc", ["Mercy Hospital"]),
        ("name=HOSP", ["Lakeside Hospital", "Mercy Hospital"]),  # any word, any case
        ("name=ercy", []),
        ("name:contains=ercy", ["Mercy Hospital"]),
        ("name:exact=mercy hospital", []),
        ("name:exact=Mercy Hospital", ["Mercy Hospital"]),
        ("name=mary's", ["St. Mary's Clinic"]),
        ("name=merc,lake", ["Lakeside Hospital", "Mercy Hospital"]),
        ("name=hosp&name=lake", ["Lakeside Hospital"]),
        ("identifier=urn:ietf:rfc:3986|urn:oid:1.2.3.200", ["Harbor Community Health Center"]),
        ("identifier=urn:oid:1.2.3.200", ["Harbor Community Health Center"]),
        ("identifier=https://lakeside.example.org/mrn", ["Lakeside Hospital"]),
        ("identifier=http://other.example.org|urn:oid:1.2.3.200", []),
        ("identifier=urn:oid:1.2.3.100,urn:oid:1.2.3.400", ["Mercy Hospital", "Old Town Practice"]),
        ("active=false", ["Old Town Practice"]),
        ("active=true&name=old", []),
        ("name=", ["Harbor Community Health Center", "Lakeside Hospital", "Mercy Hospital",
                   "Old Town Practice", "St. Mary's Clinic"]),
    ],
)  # fmt: skip
def test_search_by_name_identifier_and_active(as_integrator, orgs, query, expected):
    assert names(as_integrator.get(f"{BASE}/Organization?{query}")) == expected


def test_search_by_id(as_integrator, orgs):
    response = as_integrator.get(f"{BASE}/Organization?_id={orgs[4].uuid},{orgs[0].uuid},nonsense")
    assert names(response) == ["Lakeside Hospital", "Mercy Hospital"]


def test_an_offset_past_the_end_is_an_empty_page(as_integrator, orgs):
    body = as_integrator.get(f"{BASE}/Organization?_offset=999999999999999999").json()
    assert body["total"] == 5 and "entry" not in body
    too_long = as_integrator.get(f"{BASE}/Organization?_offset={'9' * 5000}")  # int() refuses 4,300+
    assert too_long.status_code == 400 and outcome_issues(too_long)[0]["expression"] == ["_offset"]


def test_paging_with_count_and_next_links(as_integrator, orgs):
    first = as_integrator.get(f"{BASE}/Organization?_count=2")
    body = first.json()
    assert body["total"] == 5 and names(first) == ["Harbor Community Health Center", "Lakeside Hospital"]
    seen = list(names(first))
    while (following := [link["url"] for link in body["link"] if link["relation"] == "next"]) != []:
        page = as_integrator.get(following[0].removeprefix("http://testserver"))
        seen += names(page)
        body = page.json()
    assert len(seen) == 5 and seen == sorted(seen)
    counted = as_integrator.get(f"{BASE}/Organization?_count=0&active=true").json()
    assert counted["total"] == 4 and "entry" not in counted


def test_unknown_parameters_are_reported_or_refused_when_strict(as_integrator, orgs):
    body = as_integrator.get(f"{BASE}/Organization?name=merc&partof=x").json()
    outcome = [e for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert "partof" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    strict = as_integrator.get(f"{BASE}/Organization?partof=x", HTTP_PREFER="handling=strict")
    assert strict.status_code == 400
    assert outcome_issues(strict)[0]["expression"] == ["partof"]


@pytest.mark.parametrize(
    "query",
    ["_count=lots", "_offset=-1", "_count=²", "active=maybe", "identifier=a|b|c", "name=a%00b", "_id=%00"],
)
def test_bad_values_are_a_400_naming_the_parameter(as_integrator, orgs, query):
    response = as_integrator.get(f"{BASE}/Organization?{query}")
    assert response.status_code == 400
    assert outcome_issues(response)[0]["expression"] == [query.split("=")[0]]


def test_the_capability_statement_declares_organization(anonymous):
    statement = anonymous.get(f"{BASE}/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    organization = resources["Organization"]
    assert {i["code"] for i in organization["interaction"]} == {"read", "search-type"}
    assert {p["name"] for p in organization["searchParam"]} >= {"_id", "name", "identifier", "active"}


def _entries(response, mode: str) -> list[dict]:
    body = response.json()
    assert response.status_code == 200, body
    Bundle.model_validate(body)
    return [e for e in body.get("entry", []) if e["search"]["mode"] == mode]


def test_patient_search_includes_the_managing_organizations_once(as_integrator, orgs, clerk):
    for i, org in enumerate([orgs[0], orgs[0], orgs[1], None]):
        data = patient_data(mrn=f"70{i}", managing_organization=org.uuid if org else None)
        register_patient(data=data, actor=clerk, reason="seed")
    for include in ("Patient:organization", "Patient:organization:Organization"):
        response = as_integrator.get(f"{BASE}/Patient?family=smith&_include={include}")
        assert len(_entries(response, "match")) == 4
        included = _entries(response, "include")
        assert [e["resource"]["name"] for e in included] == [
            "Mercy Hospital",
            "Harbor Community Health Center",
        ]
        assert included[0]["fullUrl"] == f"http://testserver{BASE}/Organization/{orgs[0].uuid}"
        assert included[0]["resource"] == as_integrator.get(f"{BASE}/Organization/{orgs[0].uuid}").json()
    # The links keep the _include; without it nothing is included.
    paged = as_integrator.get(f"{BASE}/Patient?family=smith&_include=Patient:organization&_count=2").json()
    assert all("_include=Patient:organization" in link["url"] for link in paged["link"])
    assert _entries(as_integrator.get(f"{BASE}/Patient?family=smith"), "include") == []


def test_an_unsupported_include_is_reported_or_refused_when_strict(as_integrator, orgs, smith):
    response = as_integrator.get(f"{BASE}/Patient?_include=Patient:general-practitioner")
    assert len(_entries(response, "match")) == 1 and _entries(response, "include") == []
    outcome = _entries(response, "outcome")[0]["resource"]
    assert "Patient:general-practitioner" in outcome["issue"][0]["diagnostics"]
    strict = as_integrator.get(f"{BASE}/Patient?_include=*", HTTP_PREFER="handling=strict")
    assert strict.status_code == 400
    assert "Patient:organization" in outcome_issues(strict)[0]["diagnostics"]


def test_the_capability_statement_declares_the_include(anonymous):
    statement = anonymous.get(f"{BASE}/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["searchInclude"] == ["Patient:organization"]
