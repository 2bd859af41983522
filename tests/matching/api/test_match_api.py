"""POST /api/v1/match/: score a probe against the registry; nothing is written."""

import pytest
from rest_framework.test import APIClient

from matching.models import MatchCandidate, MatchModelVersion
from patients.models import Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.patients.api.helpers import error_fields, errors_of, patient_body, token_client

pytestmark = pytest.mark.django_db

MATCH = "/api/v1/match/"


@pytest.fixture
def registry(clerk):
    """John Smith, a close John (Jon, other MRN) and James Smith, born the same day: a twin?"""
    john = register_patient(data=patient_data(mrn="77"), actor=clerk)
    jon = register_patient(data=patient_data(given=("Jon",), mrn="78", phone=None), actor=clerk)
    james = register_patient(
        data=patient_data(given=("James",), mrn="79", phone=None, postal_code="90210"), actor=clerk
    )
    return john, jon, james


def test_match_returns_ranked_results_with_per_field_evidence(as_integrator, registry):
    john, _jon, _ = registry
    body = patient_body(mrn=None)  # same person as john, registered elsewhere
    response = as_integrator.post(MATCH, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["model_version"] == MatchModelVersion.objects.get(active=True).version
    results = data["results"]
    assert results[0]["patient"] == str(john.uuid)
    assert results[0]["grade"] == "certain"
    probabilities = [r["probability"] for r in results]
    assert probabilities == sorted(probabilities, reverse=True)
    evidence = {e["field"]: e for e in results[0]["evidence"]}
    assert evidence["family"]["value_a"] == "Smith" and evidence["family"]["value_b"] == "Smith"
    assert evidence["family"]["level"] == "exact" and evidence["family"]["weight"] > 0
    assert evidence["birth_date"]["value_b"] == "1980-03-04"
    assert results[0]["weight"] == pytest.approx(
        sum(e["weight"] for e in results[0]["evidence"]), abs=abs(results[0]["weight"])
    )
    assert results[0]["blocks"]
    assert results[0]["guard_rails"] == []


def test_min_grade_and_limit_narrow_the_results(as_integrator, registry):
    body = patient_body(mrn=None)
    everything = as_integrator.post(MATCH, {**body, "limit": 50}, format="json").json()["results"]
    grades = {r["grade"] for r in everything}
    assert len(everything) == 3 and "certain" in grades and grades - {"certain"}
    certain = as_integrator.post(MATCH, {**body, "min_grade": "certain"}, format="json").json()["results"]
    assert certain and all(r["grade"] == "certain" for r in certain)
    assert len(certain) < len(everything)
    # James trips the twins guard rail, which caps him at possible.
    [james] = [r for r in everything if r["patient"] == str(registry[2].uuid)]
    assert james["grade"] == "possible"
    assert [g["name"] for g in james["guard_rails"]] == ["twins_given_differs"]
    one = as_integrator.post(MATCH, {**body, "limit": 1}, format="json").json()["results"]
    assert [r["patient"] for r in one] == [everything[0]["patient"]]


def test_an_identifier_alone_is_a_probe(as_integrator, registry):
    john, _, _ = registry
    probe = {"identifiers": [{"system": MRN_SYSTEM, "value": "77"}]}
    response = as_integrator.post(MATCH, probe, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["results"][0]["patient"] == str(john.uuid)


def test_match_writes_nothing(as_integrator, registry):
    before = (Patient.all_objects.count(), MatchCandidate.objects.count())
    response = as_integrator.post(MATCH, patient_body(mrn="77"), format="json")
    assert response.status_code == 200
    assert (Patient.all_objects.count(), MatchCandidate.objects.count()) == before


def test_an_identifier_another_patient_holds_is_no_conflict_here(as_integrator, registry):
    # Registration would answer 409; a match simply finds the holder.
    response = as_integrator.post(MATCH, patient_body(mrn="77"), format="json")
    assert response.status_code == 200
    assert response.json()["results"][0]["patient"] == str(registry[0].uuid)


def test_a_probe_too_thin_to_match_is_400(as_integrator, registry):
    response = as_integrator.post(MATCH, {"gender": "male", "contacts": []}, format="json")
    assert response.status_code == 400
    [error] = errors_of(response)
    assert error["code"] == "probe-too-thin"
    assert "name, an identifier or a birth date" in error["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 51}, "limit"),
        ({"min_grade": "certainly-not"}, "min_grade"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"names": [{"family": "Smith", "use": "nickname-ish"}]}, "names[0].use"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_probes_are_400_naming_the_field(as_integrator, change, field):
    response = as_integrator.post(MATCH, {**patient_body(), **change}, format="json")
    assert response.status_code == 400
    assert field in error_fields(response)


@pytest.mark.parametrize(
    ("role", "expected"),
    [("integrator", 200), ("steward", 200), ("clerk", 200), ("auditor", 200), ("outsider", 403)],
)
def test_match_needs_view_patient(request, role, expected, registry):
    response = token_client(request.getfixturevalue(role)).post(MATCH, patient_body(), format="json")
    assert response.status_code == expected
    if expected == 403:
        assert "needs the permission patients.view_patient" in errors_of(response)[0]["message"]


def test_anonymous_match_is_401():
    assert APIClient().post(MATCH, patient_body(), format="json").status_code == 401
