"""Register, read, update, delete and restore through /api/v1/patients/."""

import pytest

from patients.api import candidates
from patients.api.candidates import DuplicateCandidate
from patients.models import Patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM
from tests.patients.api.helpers import PATIENTS, detail, error_fields, errors_of, patient_body

pytestmark = pytest.mark.django_db


def register(client, **kwargs):
    response = client.post(PATIENTS, patient_body(**kwargs), format="json")
    assert response.status_code == 201, response.json()
    return response


def test_register_with_nested_children_round_trips(as_integrator, integrator):
    body = patient_body(
        given=["John", "Paul"],
        ssn="123-45-6789",
        email="John.Smith@Example.org",
        marital_status="M",
        reason="Admitted via ED",
    )
    body["names"].append({"use": "maiden", "family": "Doe", "given": ["Johnny"], "period_end": "2001-01-01"})
    response = as_integrator.post(PATIENTS, body, format="json")

    assert response.status_code == 201
    created = response.json()
    patient = Patient.objects.get(uuid=created["id"])
    assert response["ETag"] == 'W/"1"'
    assert response["Location"].endswith(detail(patient.uuid))
    assert created["candidates"] == []
    assert [(n["family"], n["given"], n["primary"]) for n in created["names"]] == [
        ("Smith", ["John", "Paul"], True),
        ("Doe", ["Johnny"], False),
    ]
    assert {(i["system"], i["value"]) for i in created["identifiers"]} == {
        (MRN_SYSTEM, "77"),
        (SSN_SYSTEM, "123-45-6789"),
    }
    assert created["addresses"][0]["postal_code"] == "02134"
    assert {c["normalized_value"] for c in created["contacts"]} == {"+16175550100", "john.smith@example.org"}
    assert created["marital_status"] == "M"
    assert patient.created_by == integrator
    assert patient.history.get().history_change_reason == "Admitted via ED"

    read = as_integrator.get(detail(patient.uuid))
    assert read.status_code == 200
    assert read["ETag"] == 'W/"1"'
    assert read.json() == {k: v for k, v in created.items() if k != "candidates"}


def test_register_returns_the_candidates_the_matcher_opened(as_integrator, jones):
    opened = DuplicateCandidate(
        id="0b4f7f0e-51fa-4fd5-9c59-5a3c2a1d4d77", patient=jones.uuid, grade="probable", probability=0.93
    )
    previous = candidates.set_candidate_provider(lambda patient: [opened])
    try:
        response = register(as_integrator, family="Jones", given=["Mary"], mrn="502")
    finally:
        candidates.set_candidate_provider(previous)
    assert response.json()["candidates"] == [
        {"id": str(opened.id), "patient": str(jones.uuid), "grade": "probable", "probability": 0.93}
    ]


def test_register_rejects_invalid_children_with_field_paths(as_integrator):
    body = patient_body()
    body["names"] = [{"family": "", "given": []}]
    body["contacts"] = [{"system": "email", "value": "not an email"}]
    body["identifiers"] = [{"system": "not a uri", "value": "1"}]
    response = as_integrator.post(PATIENTS, body, format="json")
    assert response.status_code == 400
    assert {"names[0].family", "contacts[0].value", "identifiers[0].system"} <= error_fields(response)


def test_register_reports_type_errors_with_nested_paths(as_integrator):
    body = patient_body()
    body["names"][0]["given"] = ["ok", 5, {"x": 1}]
    body["addresses"][0]["use"] = "castle"
    response = as_integrator.post(PATIENTS, body, format="json")
    assert response.status_code == 400
    assert {"names[0].given[2]", "addresses[0].use"} <= error_fields(response)


def test_register_refuses_unknown_fields(as_integrator):
    response = as_integrator.post(PATIENTS, patient_body(birthdate="1980-01-01"), format="json")
    assert response.status_code == 400
    assert error_fields(response) == {"birthdate"}
    assert errors_of(response)[0]["code"] == "unknown-field"


def test_register_of_a_known_identifier_is_409_naming_the_holder(as_integrator, jones):
    response = as_integrator.post(PATIENTS, patient_body(mrn="501"), format="json")
    assert response.status_code == 409
    [error] = errors_of(response)
    assert error["code"] == "identifier-conflict"
    assert error["existing_patient"] == str(jones.uuid)
    assert error["field"] == "identifiers[0]"
    assert Patient.objects.count() == 1


def test_put_with_if_match_replaces_the_patient(as_integrator):
    created = register(as_integrator).json()
    body = patient_body(family="Smyth", given=["Jon"], phone=None, gender="other")
    response = as_integrator.put(detail(created["id"]), body, format="json", HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200, response.json()
    assert response["ETag"] == 'W/"2"'
    updated = response.json()
    assert updated["version"] == 2
    assert updated["names"][0]["family"] == "Smyth"
    assert updated["contacts"] == []
    assert updated["gender"] == "other"


@pytest.mark.parametrize("if_match", ['W/"1"', '"1"', "1"])
def test_if_match_accepts_weak_strong_and_bare_versions(as_integrator, if_match):
    created = register(as_integrator).json()
    response = as_integrator.put(
        detail(created["id"]), patient_body(gender="female"), format="json", HTTP_IF_MATCH=if_match
    )
    assert response.status_code == 200
    assert response.json()["version"] == 2


def test_put_of_what_was_read_changes_nothing(as_integrator):
    created = register(as_integrator).json()
    read = as_integrator.get(detail(created["id"])).json()
    response = as_integrator.put(detail(created["id"]), read, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 1


def test_update_without_a_version_is_428(as_integrator):
    created = register(as_integrator).json()
    response = as_integrator.put(detail(created["id"]), patient_body(gender="female"), format="json")
    assert response.status_code == 428
    assert errors_of(response)[0]["code"] == "version-required"


def test_stale_version_is_412_with_the_current_version(as_integrator):
    created = register(as_integrator).json()
    url = detail(created["id"])
    assert as_integrator.patch(url, {"gender": "female", "version": 1}, format="json").status_code == 200
    stale = as_integrator.patch(url, {"gender": "other"}, format="json", HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    [error] = errors_of(stale)
    assert error["code"] == "version-conflict"
    assert error["current_version"] == 2
    assert stale["ETag"] == 'W/"2"'
    assert as_integrator.get(url).json()["gender"] == "female"


def test_version_field_and_if_match_must_agree(as_integrator):
    created = register(as_integrator).json()
    response = as_integrator.patch(
        detail(created["id"]), {"gender": "female", "version": 1}, format="json", HTTP_IF_MATCH='W/"2"'
    )
    assert response.status_code == 400
    assert error_fields(response) == {"version"}


def test_patch_changes_only_the_given_fields(as_integrator):
    created = register(as_integrator, email="a@example.org").json()
    url = detail(created["id"])
    new_names = [{"family": "Smith", "given": ["Johnny"]}, {"family": "Smithers", "use": "old"}]
    response = as_integrator.patch(
        url, {"names": new_names, "birth_date": "1981-01-01"}, format="json", HTTP_IF_MATCH='W/"1"'
    )
    assert response.status_code == 200, response.json()
    patched = response.json()
    assert [n["given"] for n in patched["names"]] == [["Johnny"], []]
    assert patched["birth_date"] == "1981-01-01"
    assert patched["identifiers"] == created["identifiers"]
    assert patched["contacts"] == created["contacts"]
    assert patched["addresses"] == created["addresses"]


def test_patch_checks_list_items_in_full(as_integrator):
    created = register(as_integrator).json()
    response = as_integrator.patch(
        detail(created["id"]), {"identifiers": [{"value": "9"}]}, format="json", HTTP_IF_MATCH="1"
    )
    assert response.status_code == 400
    assert error_fields(response) == {"identifiers[0].system"}


def test_delete_is_soft_and_restore_brings_the_patient_back(as_steward, steward):
    created = register(as_steward).json()
    url = detail(created["id"])

    deleted = as_steward.delete(url, HTTP_X_CHANGE_REASON="Registered twice")
    assert deleted.status_code == 204
    patient = Patient.all_objects.get(uuid=created["id"])
    assert patient.deleted_by == steward
    gone = as_steward.get(url)
    assert gone.status_code == 410
    assert errors_of(gone)[0]["code"] == "deleted"
    assert as_steward.get(PATIENTS).json()["count"] == 0

    restored = as_steward.post(f"{url}restore/", {"reason": "Not a duplicate after all"}, format="json")
    assert restored.status_code == 200
    assert restored["ETag"] == 'W/"3"'
    assert as_steward.get(url).status_code == 200
    assert patient.history.latest().history_change_reason == "Not a duplicate after all"


def test_delete_with_a_stale_if_match_is_412(as_steward):
    created = register(as_steward).json()
    response = as_steward.delete(detail(created["id"]), HTTP_IF_MATCH='W/"7"')
    assert response.status_code == 412
    assert Patient.objects.filter(uuid=created["id"]).exists()


def test_restoring_a_live_patient_is_409(as_steward):
    created = register(as_steward).json()
    response = as_steward.post(f"{detail(created['id'])}restore/", {}, format="json")
    assert response.status_code == 409
    assert errors_of(response)[0]["code"] == "invalid-state"


def test_updating_a_deleted_patient_is_410(as_steward):
    created = register(as_steward).json()
    as_steward.delete(detail(created["id"]))
    response = as_steward.patch(detail(created["id"]), {"gender": "female"}, format="json", HTTP_IF_MATCH="2")
    assert response.status_code == 410


def test_unknown_patient_is_404(as_integrator):
    response = as_integrator.get(detail("00000000-0000-0000-0000-000000000000"))
    assert response.status_code == 404
    assert errors_of(response)[0]["code"] == "not-found"


def test_change_reason_header_is_kept_in_utf8(as_integrator):
    created = register(as_integrator).json()
    reason = "Corrigé à l'accueil"
    response = as_integrator.patch(
        detail(created["id"]),
        {"gender": "female"},
        format="json",
        HTTP_IF_MATCH="1",
        HTTP_X_CHANGE_REASON=reason.encode().decode("latin-1"),
    )
    assert response.status_code == 200
    assert Patient.objects.get(uuid=created["id"]).history.latest().history_change_reason == reason
