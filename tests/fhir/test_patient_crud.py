"""Patient create, read, vread, update, delete over /fhir/, with their error codes."""

import pytest

from patients.models import Patient
from patients.services import delete_patient, update_patient
from tests.concurrency import patient_held_with_a_short_statement_timeout
from tests.factories import MRN_SYSTEM, patient_data
from tests.fhir.conftest import BASE, FHIR_JSON, expressions, outcome_issues, patient_resource

pytestmark = pytest.mark.django_db


def _create(client, resource=None, **extra):
    response = client.post(f"{BASE}/Patient", resource or patient_resource(), **extra)
    assert response.status_code == 201, response.json()
    return response


# --- create -------------------------------------------------------------------------------


def test_create_returns_201_with_location_etag_and_the_resource(as_integrator):
    response = _create(as_integrator)
    body = response.json()
    patient = Patient.objects.get(uuid=body["id"])
    assert response["Location"] == f"http://testserver/fhir/Patient/{patient.uuid}/_history/1"
    assert response["ETag"] == 'W/"1"'
    assert response["Last-Modified"].endswith("GMT")
    assert body["meta"]["versionId"] == "1"
    assert body["name"] == [{"use": "official", "family": "Smith", "given": ["John"]}]
    assert body["identifier"] == [{"system": MRN_SYSTEM, "value": "77"}]
    assert body["telecom"] == [{"system": "phone", "value": "+1 617 555 0100", "use": "home"}]
    assert patient.created_by.username == "integrator"


def test_create_ignores_a_client_id(as_integrator):
    body = _create(as_integrator, patient_resource(id="my-own-id")).json()
    assert body["id"] != "my-own-id"


@pytest.mark.parametrize(
    ("prefer", "check"),
    [
        ("return=minimal", lambda r: r.content == b""),
        ("return=representation", lambda r: r.json()["resourceType"] == "Patient"),
        ("return=OperationOutcome", lambda r: r.json()["resourceType"] == "OperationOutcome"),
    ],
)
def test_create_honours_prefer(as_integrator, prefer, check):
    response = _create(as_integrator, HTTP_PREFER=prefer)
    assert check(response)
    assert response["Location"]


def test_duplicate_identifier_is_409_naming_the_holder(as_integrator, smith):
    response = as_integrator.post(f"{BASE}/Patient", patient_resource(family="Other"))
    assert response.status_code == 409
    issue = outcome_issues(response)[0]
    assert issue["code"] == "duplicate"
    assert f"Patient/{smith.uuid}" in issue["diagnostics"]
    assert issue["expression"] == ["Patient.identifier[0]"]


@pytest.mark.parametrize(
    ("change", "status", "expression"),
    [
        ({"gender": "M"}, 422, "Patient.gender"),
        ({"birthDate": "2999-01-01"}, 422, "Patient.birthDate"),
        ({"birthDate": "1980"}, 422, "Patient.birthDate"),
        ({"birthDate": "1980-13-01"}, 400, "Patient.birthDate"),
        ({"name": [{"family": ""}]}, 400, "Patient.name[0].family"),
        ({"name": [{"use": "official"}]}, 422, "Patient.name[0].family"),
        ({"name": [{"family": "X", "use": "formal"}]}, 422, "Patient.name[0].use"),
        ({"colour": "blue"}, 400, "Patient.colour"),
        ({"multipleBirthInteger": 65537}, 422, "Patient.multipleBirthInteger"),
        ({"contained": [{"resourceType": "Nope"}]}, 400, "Patient.contained[0].resourceType"),
        ({"contained": [{"resourceType": None}]}, 400, "Patient.contained[0].resourceType"),
        ({"photo": [{"url": "http://x/y.png"}]}, 422, "Patient.photo"),
        ({"telecom": [{"system": "pigeon", "value": "1"}]}, 422, "Patient.telecom[0].system"),
        ({"telecom": [{"system": "email", "value": "not an email"}]}, 422, "Patient.telecom[0].value"),
        ({"identifier": [{"system": "no uri", "value": "1"}]}, 422, "Patient.identifier[0].system"),
        (
            {"identifier": [{"system": MRN_SYSTEM, "value": "1", "type": {"text": "MRN"}}]},
            422,
            "Patient.identifier[0].type",
        ),
        (
            {
                "link": [
                    {"type": "merged", "other": {"reference": "Patient/00000000-0000-0000-0000-000000000001"}}
                ]
            },
            422,
            "Patient.link[0].type",
        ),
        (
            {
                "link": [
                    {
                        "type": "seealso",
                        "other": {"reference": "Patient/00000000-0000-0000-0000-000000000001"},
                    }
                ]
            },
            422,
            "Patient.link[0].other",
        ),
        ({"maritalStatus": {"coding": [{"system": "http://x", "code": "M"}]}}, 422, "Patient.maritalStatus"),
        (
            {"modifierExtension": [{"url": "http://x", "valueBoolean": True}]},
            422,
            "Patient.modifierExtension",
        ),
    ],
)
def test_invalid_content_is_refused_with_the_fhirpath(as_integrator, change, status, expression):
    response = as_integrator.post(f"{BASE}/Patient", patient_resource(**change))
    assert response.status_code == status, response.json()
    assert expression in expressions(response)


def test_wrong_resource_type_is_400(as_integrator):
    response = as_integrator.post(f"{BASE}/Patient", {"resourceType": "Observation"})
    assert response.status_code == 400
    assert expressions(response) == {"resourceType"}


def test_a_json_array_is_400(as_integrator):
    response = as_integrator.post(f"{BASE}/Patient", [1, 2])
    assert response.status_code == 400
    assert outcome_issues(response)[0]["code"] == "structure"


def test_too_large_body_is_413(as_integrator):
    huge = patient_resource(name=[{"family": "x" * 100, "given": ["y" * 100] * 30000}])
    response = as_integrator.post(f"{BASE}/Patient", huge)
    assert response.status_code == 413
    assert outcome_issues(response)[0]["code"] == "too-long"


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "Patient"), ("get", "Organization"), ("get", "AuditEvent"), ("post", "Patient/_search")],
)
def test_more_parameters_than_django_reads_is_400(as_integrator, settings, method, path):
    # TooManyFieldsSent (a SuspiciousOperation) was a 500 inside the FHIR views.
    query = "&".join(f"name=a{i}" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    if method == "get":
        response = as_integrator.get(f"{BASE}/{path}?{query}")
    else:
        form = "application/x-www-form-urlencoded"
        response = as_integrator.post(f"{BASE}/{path}", query, content_type=form)
    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in outcome_issues(response)[0]["diagnostics"]


def test_auditor_cannot_create(as_auditor):
    response = as_auditor.post(f"{BASE}/Patient", patient_resource())
    assert response.status_code == 403
    assert "patients.add_patient" in outcome_issues(response)[0]["diagnostics"]
    assert not Patient.objects.exists()


# --- conditional create -----------------------------------------------------------------


def test_conditional_create_returns_the_one_existing_match(as_integrator, smith):
    response = as_integrator.post(
        f"{BASE}/Patient",
        patient_resource(family="Changed"),
        HTTP_IF_NONE_EXIST=f"identifier={MRN_SYSTEM}|77",
    )
    assert response.status_code == 200
    assert response.json()["id"] == str(smith.uuid)
    assert response.json()["name"][0]["family"] == "Smith"
    assert Patient.objects.count() == 1


def test_conditional_create_creates_when_nothing_matches(as_integrator, smith):
    response = as_integrator.post(
        f"{BASE}/Patient", patient_resource(mrn="78"), HTTP_IF_NONE_EXIST=f"identifier={MRN_SYSTEM}|78"
    )
    assert response.status_code == 201
    assert Patient.objects.count() == 2


def test_conditional_create_with_several_matches_is_412(as_integrator, clerk):
    from patients.data import IdentifierData
    from patients.services import register_patient

    for mrn in ("1", "2"):
        data = patient_data(mrn=mrn)
        data = data.__class__(
            **{
                **data.__dict__,
                "identifiers": (*data.identifiers, IdentifierData(system=f"urn:oid:9.{mrn}", value="X")),
            }
        )
        register_patient(data=data, actor=clerk)
    response = as_integrator.post(
        f"{BASE}/Patient", patient_resource(mrn="3"), HTTP_IF_NONE_EXIST="identifier=X"
    )
    assert response.status_code == 412
    assert outcome_issues(response)[0]["code"] == "multiple-matches"


def test_conditional_create_refuses_unknown_criteria(as_integrator):
    response = as_integrator.post(f"{BASE}/Patient", patient_resource(), HTTP_IF_NONE_EXIST="family=Smith")
    assert response.status_code == 400
    assert expressions(response) == {"If-None-Exist"}


# --- read and vread -----------------------------------------------------------------------


def test_read_returns_the_resource_with_etag(as_integrator, smith):
    response = as_integrator.get(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 200
    assert response["ETag"] == 'W/"1"'
    body = response.json()
    assert body["resourceType"] == "Patient"
    assert body["identifier"][0]["type"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
        "code": "MR",
        "display": "Medical record number",
    }


@pytest.mark.parametrize("id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid", "123"])
def test_read_unknown_is_404(as_integrator, id):
    response = as_integrator.get(f"{BASE}/Patient/{id}")
    assert response.status_code == 404
    assert outcome_issues(response)[0]["code"] == "not-found"


def test_vread_after_update_returns_each_version(as_integrator, smith, clerk):
    update_patient(patient=smith, data=patient_data(family="Smyth"), expected_version=1, actor=clerk)
    old = as_integrator.get(f"{BASE}/Patient/{smith.uuid}/_history/1")
    new = as_integrator.get(f"{BASE}/Patient/{smith.uuid}/_history/2")
    assert old.status_code == new.status_code == 200
    assert old.json()["name"][0]["family"] == "Smith"
    assert old.json()["meta"]["versionId"] == "1"
    assert old["ETag"] == 'W/"1"'
    assert new.json()["name"][0]["family"] == "Smyth"
    current = as_integrator.get(f"{BASE}/Patient/{smith.uuid}").json()
    assert {k: v for k, v in new.json().items() if k != "meta"} == {
        k: v for k, v in current.items() if k != "meta"
    }


@pytest.mark.parametrize("vid", ["3", "0", "abc"])
def test_vread_unknown_version_is_404(as_integrator, smith, vid):
    response = as_integrator.get(f"{BASE}/Patient/{smith.uuid}/_history/{vid}")
    assert response.status_code == 404


# --- update -------------------------------------------------------------------------------


def _current(client, patient) -> dict:
    return client.get(f"{BASE}/Patient/{patient.uuid}").json()


def test_update_with_if_match_bumps_the_version(as_integrator, smith):
    resource = _current(as_integrator, smith)
    resource["name"][0]["family"] = "Smyth"
    resource["gender"] = "other"
    response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200, response.json()
    assert response["ETag"] == 'W/"2"'
    assert response["Location"].endswith(f"/Patient/{smith.uuid}/_history/2")
    assert response.json()["name"][0]["family"] == "Smyth"
    smith.refresh_from_db()
    assert (smith.version, smith.gender) == (2, "other")


def test_update_without_change_keeps_the_version(as_integrator, smith):
    resource = _current(as_integrator, smith)
    response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource)
    assert response.status_code == 200
    assert response["ETag"] == 'W/"1"'


def test_stale_if_match_is_412(as_integrator, smith, clerk):
    resource = _current(as_integrator, smith)
    update_patient(patient=smith, data=patient_data(family="Smyth"), expected_version=1, actor=clerk)
    response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 412
    assert response["ETag"] == 'W/"2"'
    assert outcome_issues(response)[0]["code"] == "conflict"


@pytest.mark.django_db(transaction=True)
def test_an_update_that_waits_past_the_statement_timeout_is_a_503_outcome(as_integrator, smith):
    resource = _current(as_integrator, smith)
    resource["gender"] = "other"
    with patient_held_with_a_short_statement_timeout(smith):
        response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 503, response.json()
    assert response["Retry-After"] == "5"
    assert outcome_issues(response)[0]["code"] == "timeout"
    smith.refresh_from_db()
    assert (smith.version, smith.gender) == (1, "male")


def test_malformed_if_match_is_400(as_integrator, smith):
    response = as_integrator.put(
        f"{BASE}/Patient/{smith.uuid}", _current(as_integrator, smith), HTTP_IF_MATCH="yesterday"
    )
    assert response.status_code == 400
    assert expressions(response) == {"If-Match"}


@pytest.mark.parametrize("body_id", [None, "00000000-0000-0000-0000-000000000000"])
def test_update_needs_the_matching_id_in_the_body(as_integrator, smith, body_id):
    resource = _current(as_integrator, smith)
    resource.pop("id")
    if body_id:
        resource["id"] = body_id
    response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource)
    assert response.status_code == 400
    assert expressions(response) == {"Patient.id"}


def test_update_of_an_unknown_id_is_405(as_integrator):
    id = "00000000-0000-0000-0000-000000000000"
    response = as_integrator.put(f"{BASE}/Patient/{id}", patient_resource(id=id))
    assert response.status_code == 405
    assert "updateCreate" in outcome_issues(response)[0]["diagnostics"]
    assert not Patient.objects.exists()


def test_update_to_an_identifier_of_another_patient_is_409(as_integrator, smith, jones):
    resource = _current(as_integrator, jones)
    resource["identifier"].append({"system": MRN_SYSTEM, "value": "77"})
    response = as_integrator.put(f"{BASE}/Patient/{jones.uuid}", resource)
    assert response.status_code == 409
    assert f"Patient/{smith.uuid}" in outcome_issues(response)[0]["diagnostics"]


def test_invalid_update_changes_nothing(as_integrator, smith):
    resource = _current(as_integrator, smith)
    resource["gender"] = "F"
    response = as_integrator.put(f"{BASE}/Patient/{smith.uuid}", resource)
    assert response.status_code == 422
    smith.refresh_from_db()
    assert (smith.version, smith.gender) == (1, "male")


def test_auditor_cannot_update(as_auditor, smith):
    resource = _current(as_auditor, smith)
    response = as_auditor.put(f"{BASE}/Patient/{smith.uuid}", resource)
    assert response.status_code == 403


# --- conditional update -----------------------------------------------------------------


def test_conditional_update_updates_the_match(as_integrator, smith):
    response = as_integrator.put(
        f"{BASE}/Patient?identifier={MRN_SYSTEM}|77", patient_resource(family="Smyth")
    )
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == str(smith.uuid)
    smith.refresh_from_db()
    assert smith.version == 2


def test_conditional_update_creates_when_nothing_matches(as_integrator):
    response = as_integrator.put(f"{BASE}/Patient?identifier={MRN_SYSTEM}|77", patient_resource())
    assert response.status_code == 201
    assert Patient.objects.count() == 1


def test_conditional_update_with_another_id_in_the_body_is_400(as_integrator, smith):
    resource = patient_resource(id="00000000-0000-0000-0000-000000000000")
    response = as_integrator.put(f"{BASE}/Patient?identifier={MRN_SYSTEM}|77", resource)
    assert response.status_code == 400


def test_put_on_the_type_without_condition_is_405(as_integrator):
    response = as_integrator.put(f"{BASE}/Patient", patient_resource())
    assert response.status_code == 405


# --- delete -------------------------------------------------------------------------------


def test_delete_then_read_is_410_and_old_versions_stay_readable(as_steward, smith):
    response = as_steward.delete(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 204
    gone = as_steward.get(f"{BASE}/Patient/{smith.uuid}")
    assert gone.status_code == 410
    assert outcome_issues(gone)[0]["code"] == "deleted"
    old = as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history/1")
    assert old.status_code == 200
    assert old.json()["name"][0]["family"] == "Smith"
    deletion = as_steward.get(f"{BASE}/Patient/{smith.uuid}/_history/2")
    assert deletion.status_code == 410
    assert as_steward.delete(f"{BASE}/Patient/{smith.uuid}").status_code == 204  # idempotent


def test_update_of_a_deleted_patient_is_410(as_steward, smith, clerk):
    resource = _current(as_steward, smith)
    delete_patient(patient=smith, actor=clerk)
    assert as_steward.put(f"{BASE}/Patient/{smith.uuid}", resource).status_code == 410


def test_delete_with_stale_if_match_is_412(as_steward, smith):
    response = as_steward.delete(f"{BASE}/Patient/{smith.uuid}", HTTP_IF_MATCH='W/"7"')
    assert response.status_code == 412
    assert Patient.objects.filter(pk=smith.pk).exists()


def test_delete_unknown_is_404(as_steward):
    assert as_steward.delete(f"{BASE}/Patient/00000000-0000-0000-0000-000000000000").status_code == 404


def test_integrator_cannot_delete(as_integrator, smith):
    response = as_integrator.delete(f"{BASE}/Patient/{smith.uuid}")
    assert response.status_code == 403
    assert "patients.delete_patient" in outcome_issues(response)[0]["diagnostics"]


def test_responses_are_fhir_json(as_integrator, smith):
    response = as_integrator.get(f"{BASE}/Patient/{smith.uuid}")
    assert response["Content-Type"] == f"{FHIR_JSON}; charset=utf-8"


def test_patients_to_fhir_needs_a_fixed_number_of_queries(clerk, django_assert_max_num_queries):
    from fhir_api.mapping import patients_to_fhir
    from patients.services import register_patient

    patients = [
        register_patient(data=patient_data(mrn=str(n), family=f"F{n}"), actor=clerk) for n in range(8)
    ]
    with django_assert_max_num_queries(6):
        resources = patients_to_fhir(reversed(patients))
    assert [r["name"][0]["family"] for r in resources] == [f"F{n}" for n in reversed(range(8))]


def test_a_create_with_a_condition_in_the_url_is_refused_not_run_as_a_plain_create(as_integrator):
    before = Patient.objects.count()
    response = as_integrator.post(f"{BASE}/Patient?family=Smith&_format=json", patient_resource())
    assert response.status_code == 400
    (issue,) = outcome_issues(response)
    assert "If-None-Exist" in issue["diagnostics"] and issue["expression"] == ["family"]
    assert Patient.objects.count() == before
