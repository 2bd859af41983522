"""POST /fhir with transaction and batch Bundles."""

import pytest

from patients.codes import LinkType
from patients.models import Link, Patient
from tests.factories import MRN_SYSTEM
from tests.fhir.conftest import BASE, expressions, outcome_issues, patient_resource

pytestmark = pytest.mark.django_db

A = "urn:uuid:0f6a1a4e-1b1a-4bd5-9b36-8a3c5e2d0001"
B = "urn:uuid:0f6a1a4e-1b1a-4bd5-9b36-8a3c5e2d0002"


def _post_entry(resource, full_url=None, **request):
    entry = {"resource": resource, "request": {"method": "POST", "url": "Patient", **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _bundle(kind, *entries):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_transaction_creates_all_and_answers_in_entry_order(as_integrator):
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(patient_resource(family="Adams", mrn="1"), A),
            _post_entry(patient_resource(family="Baker", mrn="2"), B),
        ),
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["type"] == "transaction-response"
    families = [e["resource"]["name"][0]["family"] for e in body["entry"]]
    assert families == ["Adams", "Baker"]
    for entry in body["entry"]:
        assert entry["response"]["status"] == "201 Created"
        assert entry["response"]["etag"] == 'W/"1"'
        assert entry["response"]["location"].startswith("Patient/")
        assert entry["fullUrl"].startswith("http://testserver/fhir/Patient/")
    assert Patient.objects.count() == 2


def test_transaction_resolves_urn_uuid_references_between_entries(as_integrator):
    # The referring entry comes first: the processor creates the referenced one before it.
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(
                patient_resource(
                    family="Adams", mrn="1", link=[{"other": {"reference": B}, "type": "refer"}]
                ),
                A,
            ),
            _post_entry(patient_resource(family="Baker", mrn="2"), B),
        ),
    )
    assert response.status_code == 200, response.json()
    adams_id, baker_id = (e["resource"]["id"] for e in response.json()["entry"])
    assert response.json()["entry"][0]["resource"]["link"] == [
        {"other": {"reference": f"Patient/{baker_id}"}, "type": "refer"}
    ]
    assert Link.objects.filter(patient__uuid=adams_id, other__uuid=baker_id, type=LinkType.REFER).exists()


def test_transaction_resolves_a_cycle_of_seealso_links(as_integrator):
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(
                patient_resource(
                    family="Adams", mrn="1", link=[{"other": {"reference": B}, "type": "seealso"}]
                ),
                A,
            ),
            _post_entry(
                patient_resource(
                    family="Adams", mrn="2", link=[{"other": {"reference": A}, "type": "seealso"}]
                ),
                B,
            ),
        ),
    )
    assert response.status_code == 200, response.json()
    first, second = (e["resource"] for e in response.json()["entry"])
    assert first["link"] == [{"other": {"reference": f"Patient/{second['id']}"}, "type": "seealso"}]
    assert second["link"] == [{"other": {"reference": f"Patient/{first['id']}"}, "type": "seealso"}]
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created"] * 2


def test_transaction_rolls_back_everything_when_one_entry_fails(as_integrator, smith):
    before = smith.version
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(patient_resource(family="Adams", mrn="1")),
            {
                "resource": {**patient_resource(family="Smyth"), "id": str(smith.uuid)},
                "request": {"method": "PUT", "url": f"Patient/{smith.uuid}"},
            },
            _post_entry(patient_resource(family="Baker", mrn="2", gender="M")),
        ),
    )
    assert response.status_code == 422
    issue = outcome_issues(response)[0]
    assert issue["diagnostics"].startswith("Bundle.entry[2]:")
    assert expressions(response) == {"Bundle.entry[2].resource.gender"}
    assert Patient.objects.count() == 1
    smith.refresh_from_db()
    assert (smith.version, smith.primary_name.family) == (before, "Smith")


def test_transaction_with_a_duplicate_identifier_is_409_and_writes_nothing(as_integrator, smith):
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(patient_resource(family="Adams", mrn="1")),
            _post_entry(patient_resource()),
        ),
    )
    assert response.status_code == 409
    assert f"Patient/{smith.uuid}" in outcome_issues(response)[0]["diagnostics"]
    assert Patient.objects.count() == 1


def test_transaction_processes_deletes_before_creates(as_steward, smith):
    # Creating MRN 77 again only works because the DELETE (listed last) runs first and frees it.
    response = as_steward.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(patient_resource(family="Newman")),
            {"request": {"method": "DELETE", "url": f"Patient/{smith.uuid}"}},
        ),
    )
    assert response.status_code == 200, response.json()
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created", "204 No Content"]
    assert Patient.objects.get().primary_name.family == "Newman"


def test_transaction_entry_refused_by_role_fails_the_whole_bundle(as_integrator, smith):
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            _post_entry(patient_resource(family="Adams", mrn="1")),
            {"request": {"method": "DELETE", "url": f"Patient/{smith.uuid}"}},
        ),
    )
    assert response.status_code == 403
    assert "patients.delete_patient" in outcome_issues(response)[0]["diagnostics"]
    assert Patient.objects.count() == 1


def test_transaction_may_not_touch_one_patient_twice(as_steward, smith):
    url = f"Patient/{smith.uuid}"
    response = as_steward.post(
        BASE,
        _bundle(
            "transaction",
            {
                "resource": {**patient_resource(), "id": str(smith.uuid)},
                "request": {"method": "PUT", "url": url},
            },
            {"request": {"method": "DELETE", "url": url}},
        ),
    )
    assert response.status_code == 400


def test_transaction_conditional_create_and_get(as_integrator, smith):
    response = as_integrator.post(
        BASE,
        _bundle(
            "transaction",
            {"request": {"method": "GET", "url": f"Patient/{smith.uuid}"}},
            _post_entry(patient_resource(), A, ifNoneExist=f"identifier={MRN_SYSTEM}|77"),
        ),
    )
    assert response.status_code == 200, response.json()
    read, created = response.json()["entry"]
    assert read["response"]["status"] == "200 OK"
    assert read["resource"]["id"] == str(smith.uuid)
    assert created["response"]["status"] == "200 OK"  # the existing one
    assert created["resource"]["id"] == str(smith.uuid)
    assert Patient.objects.count() == 1


def test_batch_reports_each_entry_on_its_own(as_integrator, smith):
    response = as_integrator.post(
        BASE,
        _bundle(
            "batch",
            _post_entry(patient_resource(family="Adams", mrn="1")),
            _post_entry(patient_resource()),  # MRN 77 is smith's
            {"request": {"method": "GET", "url": f"Patient/{smith.uuid}"}},
            {"request": {"method": "GET", "url": "Patient/00000000-0000-0000-0000-000000000000"}},
            _post_entry(patient_resource(family="Baker", mrn="2", gender="M")),
            {"request": {"method": "DELETE", "url": f"Patient/{smith.uuid}"}},
        ),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == [
        "201 Created",
        "409 Conflict",
        "200 OK",
        "404 Not Found",
        "422 Unprocessable Entity",
        "403 Forbidden",
    ]
    assert body["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "duplicate"
    assert body["entry"][4]["response"]["outcome"]["issue"][0]["expression"] == ["Patient.gender"]
    assert Patient.objects.count() == 2


def test_batch_does_not_resolve_references_between_entries(as_integrator):
    response = as_integrator.post(
        BASE,
        _bundle(
            "batch",
            _post_entry(patient_resource(family="Adams", mrn="1"), A),
            _post_entry(
                patient_resource(family="Baker", mrn="2", link=[{"other": {"reference": A}, "type": "refer"}])
            ),
        ),
    )
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity"]


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {}}]}, "Bundle.entry[0].request"),
        ({"resourceType": "Patient"}, "resourceType"),
        (
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "POST", "url": "Observation"}, "resource": {}}],
            },
            "Bundle.entry[0].request.url",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Nope"}}
                ],
            },
            "Bundle.entry[0].resource.resourceType",
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": None}}
                ],
            },
            "Bundle.entry[0].resource.resourceType",
        ),
    ],
)
def test_malformed_bundles_are_400(as_integrator, body, expression):
    response = as_integrator.post(BASE, body)
    assert response.status_code == 400
    assert expressions(response) == {expression}


def test_get_on_the_base_is_405(as_integrator):
    assert as_integrator.get(BASE).status_code == 405


def test_anonymous_bundle_is_401(anonymous):
    assert anonymous.post(BASE, _bundle("batch")).status_code == 401


def test_batch_search_entry_uses_the_search_module(as_integrator, smith, jones):
    response = as_integrator.post(
        BASE, _bundle("batch", {"request": {"method": "GET", "url": f"Patient?identifier={MRN_SYSTEM}|77"}})
    )
    entry = response.json()["entry"][0]
    assert entry["response"]["status"] == "200 OK"
    assert entry["resource"]["type"] == "searchset"
    assert [e["resource"]["id"] for e in entry["resource"]["entry"]] == [str(smith.uuid)]


def test_bundle_with_wrong_types_is_400_with_paths(as_integrator):
    body = _bundle(
        "batch", {"request": {"method": "POST", "url": 3}, "resource": patient_resource(colour="blue")}
    )
    response = as_integrator.post(BASE, body)
    assert response.status_code == 400
    assert {"Bundle.entry[0].request.url", "Bundle.entry[0].resource.colour"} <= expressions(response)
