"""Instance and type history Bundles, and how a merged-away patient reads."""

import pytest

from matching.merging import merge_patients
from patients.services import delete_patient, restore_patient, update_patient
from tests.factories import patient_data
from tests.fhir.conftest import BASE, outcome_issues

pytestmark = pytest.mark.django_db


def test_instance_history_lists_every_version_newest_first(as_steward, smith, clerk):
    update_patient(patient=smith, data=patient_data(family="Smyth"), expected_version=1, actor=clerk)
    delete_patient(patient=smith, actor=clerk)
    restore_patient(patient=smith, actor=clerk)
    response = as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history")
    assert response.status_code == 200
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "history", 4)
    entries = bundle["entry"]
    assert [e["response"]["etag"] for e in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["PUT", "DELETE", "PUT", "POST"]
    assert entries[3]["request"]["url"] == "Patient"
    assert entries[3]["response"]["status"] == "201 Created"
    assert entries[1]["request"]["url"] == f"Patient/{smith.uuid}"
    assert "resource" not in entries[1]  # the deletion has no resource
    assert entries[0]["resource"]["name"][0]["family"] == "Smyth"
    assert entries[3]["resource"]["name"][0]["family"] == "Smith"
    assert all(e["fullUrl"] == f"http://testserver/fhir/Patient/{smith.uuid}" for e in entries)


def test_instance_history_pages_with_count(as_steward, smith, clerk):
    for family in ("A", "B", "C"):
        update_patient(patient=smith, data=patient_data(family=family), expected_version=None, actor=clerk)
    first = as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history?_count=2").json()
    assert [e["response"]["etag"] for e in first["entry"]] == ['W/"4"', 'W/"3"']
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    second = as_steward.get(links["next"].removeprefix("http://testserver")).json()
    assert [e["response"]["etag"] for e in second["entry"]] == ['W/"2"', 'W/"1"']
    assert "next" not in {link["relation"] for link in second["link"]}


def test_history_since_filters_versions(as_steward, smith, clerk):
    update_patient(patient=smith, data=patient_data(family="Smyth"), expected_version=1, actor=clerk)
    smith.refresh_from_db()
    since = smith.updated_at.isoformat().replace("+00:00", "Z")
    bundle = as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history", {"_since": since}).json()
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"2"']


@pytest.mark.parametrize(
    "query",
    ["_since=yesterday", "_count=-1", "_page=0", "_page=%C2%B2", "_count=%C2%B2", "_page=" + "9" * 5000],
)
def test_bad_history_parameters_are_400(as_steward, smith, query):
    response = as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history?{query}")
    assert response.status_code == 400
    assert outcome_issues(response)[0]["expression"] == [query.split("=")[0]]


def test_type_history_covers_all_patients(as_steward, smith, jones, clerk):
    update_patient(patient=smith, data=patient_data(family="Smyth"), expected_version=1, actor=clerk)
    bundle = as_steward.get(f"{BASE}/Patient/_history").json()
    assert bundle["total"] == 3
    assert [(e["fullUrl"].rsplit("/", 1)[1], e["response"]["etag"]) for e in bundle["entry"]] == [
        (str(smith.uuid), 'W/"2"'),
        (str(jones.uuid), 'W/"1"'),
        (str(smith.uuid), 'W/"1"'),
    ]
    assert bundle["entry"][0]["resource"]["name"][0]["family"] == "Smyth"


def test_history_of_a_deleted_patient_is_readable(as_steward, smith, clerk):
    delete_patient(patient=smith, actor=clerk)
    assert as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history").json()["total"] == 2


@pytest.mark.parametrize("path", ["Patient/{id}/_history", "Patient/_history"])
def test_integrator_may_not_read_history_but_auditor_may(as_integrator, as_auditor, smith, path):
    url = f"{BASE}/{path.format(id=smith.uuid)}"
    refused = as_integrator.get(url)
    assert refused.status_code == 403
    assert "patients.view_historicalpatient" in outcome_issues(refused)[0]["diagnostics"]
    assert as_auditor.get(url).status_code == 200


def test_merged_away_patient_reads_inactive_with_replaced_by(as_integrator, smith, jones, steward):
    merge_patients(survivor=smith, duplicate=jones, actor=steward, reason="same person")
    duplicate = as_integrator.get(f"{BASE}/Patient/{jones.uuid}").json()
    assert duplicate["active"] is False
    assert duplicate["link"] == [{"other": {"reference": f"Patient/{smith.uuid}"}, "type": "replaced-by"}]
    survivor = as_integrator.get(f"{BASE}/Patient/{smith.uuid}").json()
    assert {"other": {"reference": f"Patient/{jones.uuid}"}, "type": "replaces"} in survivor["link"]


def test_survivor_read_and_put_back_keeps_its_merge_link(as_integrator, smith, jones, steward):
    merge_patients(survivor=smith, duplicate=jones, actor=steward, reason="same person")
    resource = as_integrator.get(f"{BASE}/Patient/{smith.uuid}").json()
    resource["gender"] = "other"
    response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource)
    assert response.status_code == 200, response.json()
    assert response.json()["link"] == resource["link"]


def test_merged_away_patient_cannot_be_updated(as_integrator, smith, jones, steward):
    merge_patients(survivor=smith, duplicate=jones, actor=steward, reason="same person")
    resource = as_integrator.get(f"{BASE}/Patient/{jones.uuid}").json()
    response = as_integrator.put(f"{BASE}/Patient/{jones.uuid}", resource)
    assert response.status_code == 409
    assert str(smith.uuid) in outcome_issues(response)[0]["diagnostics"]


def test_vread_of_merged_versions(as_steward, smith, jones, steward):
    merge_patients(survivor=smith, duplicate=jones, actor=steward, reason="same person")
    jones.refresh_from_db()
    before = as_steward.get(f"{BASE}/Patient/{jones.uuid}/_history/1").json()
    after = as_steward.get(f"{BASE}/Patient/{jones.uuid}/_history/{jones.version}").json()
    assert before["active"] is True
    assert "link" not in before
    assert after["active"] is False
    assert after["link"][0]["type"] == "replaced-by"
