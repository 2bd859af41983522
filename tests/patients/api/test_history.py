"""GET /api/v1/patients/{id}/history/: who, when, why and what changed."""

import pytest

from patients.models import Patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM
from tests.patients.api.helpers import PATIENTS, detail, patient_body

pytestmark = pytest.mark.django_db


def changes_of(version: dict) -> dict:
    return {(c["field"], c["op"]): (c["old"], c["new"]) for c in version["changes"]}


def test_history_lists_each_version_with_who_when_why_and_what(
    as_integrator, as_steward, integrator, steward
):
    created = as_integrator.post(
        PATIENTS, patient_body(reason="New patient at the front desk"), format="json"
    )
    url = detail(created.json()["id"])
    body = patient_body(gender="female", ssn="123-45-6789", phone=None)
    as_integrator.put(
        url, body, format="json", HTTP_IF_MATCH="1", HTTP_X_CHANGE_REASON="Corrected sex, added SSN"
    )
    as_steward.delete(url, HTTP_X_CHANGE_REASON="Test record")
    as_steward.post(f"{url}restore/", {"reason": "Real after all"}, format="json")

    response = as_steward.get(f"{url}history/")

    assert response.status_code == 200
    versions = response.json()["results"]
    assert [(v["version"], v["action"], v["by"], v["reason"]) for v in versions] == [
        (4, "restored", "steward", "Real after all"),
        (3, "deleted", "steward", "Test record"),
        (2, "updated", "integrator", "Corrected sex, added SSN"),
        (1, "created", "integrator", "New patient at the front desk"),
    ]
    restored, deleted, updated, registered = (changes_of(v) for v in versions)

    assert ("deleted_at", "set") in deleted and deleted[("deleted_at", "set")][0] is None
    assert restored[("deleted_at", "set")][1] is None
    assert set(deleted) == {("deleted_at", "set")}  # identifiers' live flag is internal

    assert updated[("gender", "set")] == ("male", "female")
    assert updated[("identifiers", "add")][1]["system"] == SSN_SYSTEM
    assert updated[("contacts", "remove")][0]["value"] == "+1 617 555 0100"
    assert ("names", "add") not in updated  # the unchanged name kept its row

    assert registered[("gender", "set")] == (None, "male")
    assert registered[("names", "add")][1]["family"] == "Smith"
    assert registered[("identifiers", "add")][1] == {
        "system": MRN_SYSTEM,
        "value": "77",
        "use": "usual",
        "type": "MR",
        "assigner": "",
        "period_start": None,
        "period_end": None,
    }
    assert {field for field, _ in registered} >= {"names", "identifiers", "addresses", "contacts"}


def test_history_of_a_deleted_patient_stays_readable(as_steward):
    created = as_steward.post(PATIENTS, patient_body(), format="json").json()
    as_steward.delete(detail(created["id"]))
    response = as_steward.get(f"{detail(created['id'])}history/")
    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_history_is_paginated(as_steward):
    created = as_steward.post(PATIENTS, patient_body(), format="json").json()
    for version, gender in enumerate(["female", "other", "male"], start=1):
        as_steward.patch(detail(created["id"]), {"gender": gender}, format="json", HTTP_IF_MATCH=str(version))
    page = as_steward.get(f"{detail(created['id'])}history/", {"page_size": 2}).json()
    assert page["count"] == 4
    assert [v["version"] for v in page["results"]] == [4, 3]
    assert Patient.objects.get(uuid=created["id"]).version == 4
