"""Patient/$match: ranking, grades, evidence, onlyCertainMatches, count, thin input."""

from __future__ import annotations

from datetime import date

import pytest

from matching.models import MatchCandidate
from patients.models import Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.fhir.conftest import BASE, expressions, outcome_issues, patient_resource

MATCH = f"{BASE}/Patient/$match"
GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"


def match_params(patient: dict, **extra) -> dict:
    params = [{"name": "resource", "resource": patient}]
    for name, value in extra.items():
        key = "valueBoolean" if isinstance(value, bool) else "valueInteger"
        params.append({"name": name, key: value})
    return {"resourceType": "Parameters", "parameter": params}


def entries(response, mode: str = "match") -> list[dict]:
    return [e for e in response.json()["entry"] if e["search"]["mode"] == mode]


def ext(extensions: list[dict], url: str) -> dict:
    return next(e for e in extensions if e["url"] == url)


@pytest.fixture
def people(clerk):
    """Smith (MRN 77), a probable namesake without identifier, and an unrelated Jones."""
    smith = register_patient(data=patient_data(), actor=clerk, reason="seed")
    namesake = register_patient(
        data=patient_data(given=("J",), mrn=None, phone=None, postal_code="90210"), actor=clerk, reason="seed"
    )
    jones = register_patient(
        data=patient_data(
            family="Jones",
            given=("Mary",),
            gender="female",
            mrn="501",
            phone="617 555 0142",
            birth_date=date(1975, 1, 2),
        ),
        actor=clerk,
        reason="seed",
    )
    return smith, namesake, jones


def test_match_ranks_candidates_with_grades_scores_and_evidence(as_integrator, people):
    smith, _namesake, jones = people
    response = as_integrator.post(MATCH, match_params(patient_resource()))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    found = entries(response)
    assert next(e["resource"]["id"] for e in found) == str(smith.uuid)
    assert str(jones.uuid) not in {e["resource"]["id"] for e in found}
    assert body["total"] == len(found)
    scores = [e["search"]["score"] for e in found]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 1
    top = found[0]
    assert top["fullUrl"] == f"http://testserver/fhir/Patient/{smith.uuid}"
    assert ext(top["search"]["extension"], GRADE)["valueCode"] == "certain"
    evidence = ext(top["search"]["extension"], "http://testserver/fhir/StructureDefinition/match-evidence")
    parts = evidence["extension"]
    assert any(p["url"] == "block" and p["valueCode"] == "identifier" for p in parts)
    assert ext(parts, "modelVersion")["valueInteger"] >= 1
    fields = {
        ext(p["extension"], "name")["valueCode"]: {
            q["url"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["extension"]
        }
        for p in parts
        if p["url"] == "field"
    }
    assert fields["family"]["level"] == "exact"
    assert fields["family"]["probeValue"] and fields["family"]["candidateValue"]
    assert fields["identifier"]["level"] == "exact"
    assert isinstance(fields["birth_date"]["weight"], float | int) and fields["birth_date"]["weight"] > 0


def test_match_writes_nothing(as_integrator, people):
    before = (Patient.all_objects.count(), MatchCandidate.objects.count())
    assert as_integrator.post(MATCH, match_params(patient_resource())).status_code == 200
    assert (Patient.all_objects.count(), MatchCandidate.objects.count()) == before


def test_only_certain_matches_leaves_out_the_lesser_grades(as_integrator, people):
    smith, namesake, _ = people
    everything = entries(as_integrator.post(MATCH, match_params(patient_resource(mrn=None))))
    assert len(everything) >= 2, everything
    grades = {e["resource"]["id"]: ext(e["search"]["extension"], GRADE)["valueCode"] for e in everything}
    certain = entries(as_integrator.post(MATCH, match_params(patient_resource(), onlyCertainMatches=True)))
    assert [e["resource"]["id"] for e in certain] == [str(smith.uuid)]
    assert all(ext(e["search"]["extension"], GRADE)["valueCode"] == "certain" for e in certain)
    assert grades == {str(smith.uuid): "certain", str(namesake.uuid): "probable"}


def test_count_limits_the_matches(as_integrator, people):
    response = as_integrator.post(MATCH, match_params(patient_resource(mrn=None), count=1))
    assert response.status_code == 200
    assert len(entries(response)) == 1 and response.json()["total"] == 1


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "gender": "male"},
        {"resourceType": "Patient", "name": [{"family": "Smith"}]},
        {"resourceType": "Patient", "birthDate": "1980-03-04"},
    ],
    ids=["only-gender", "only-family", "only-birth-date"],
)
def test_thin_input_answers_200_with_a_warning(as_integrator, people, resource):
    response = as_integrator.post(MATCH, match_params(resource))
    assert response.status_code == 200, response.content
    assert entries(response) == []
    (warning,) = entries(response, "outcome")
    issue = warning["resource"]["issue"][0]
    assert issue["severity"] == "warning" and issue["code"] == "incomplete"
    assert "too thin" in issue["diagnostics"] and "identifier" in issue["diagnostics"]


def test_an_invalid_probe_is_refused_with_its_fhirpath(as_integrator):
    response = as_integrator.post(MATCH, match_params(patient_resource(gender="M")))
    assert response.status_code == 422
    assert "Parameters.parameter[0].resource.gender" in expressions(response)


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ({"resourceType": "Patient"}, None),
        ({"resourceType": "Parameters", "parameter": []}, None),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "resource", "valueString": "x"}]},
            "Parameters.parameter[0]",
        ),
        (match_params(patient_resource(), count=0), "Parameters.parameter[1].valueInteger"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "resource", "resource": patient_resource()},
                    {"name": "onlyCertainMatches", "valueString": "yes"},
                ],
            },
            "Parameters.parameter[1]",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "resource", "resource": patient_resource()},
                    {"name": "onlyCertainMatch", "valueBoolean": True},
                ],
            },
            "Parameters.parameter[1]",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "resource", "resource": {"resourceType": "Observation"}}],
            },
            None,
        ),
        # fhir.resources raises TypeError / KeyError (not a validation error) on these.
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "resource", "resource": {"resourceType": None}}],
            },
            "Parameters.parameter[0].resource.resourceType",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "resource", "resource": {"resourceType": "Nope"}}],
            },
            "Parameters.parameter[0].resource.resourceType",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "resource",
                        "resource": {**patient_resource(), "contained": [{"resourceType": 5}]},
                    }
                ],
            },
            "Parameters.parameter[0].resource.contained[0].resourceType",
        ),
    ],
    ids=[
        "not-parameters",
        "no-resource",
        "resource-not-a-resource",
        "count-zero",
        "boolean-as-string",
        "unknown-parameter",
        "not-a-patient",
        "null-resource-type",
        "unknown-resource-type",
        "contained-number-resource-type",
    ],
)
def test_bad_parameters_are_400_with_a_clear_issue(as_integrator, body, expression):
    response = as_integrator.post(MATCH, body)
    assert response.status_code == 400, response.content
    issues = outcome_issues(response)
    assert issues[0]["diagnostics"]
    if expression:
        assert expression in expressions(response)


def test_get_is_405_saying_to_post(as_integrator):
    response = as_integrator.get(MATCH)
    assert response.status_code == 405
    assert "POST a Parameters" in outcome_issues(response)[0]["diagnostics"]


def test_match_needs_authentication_and_read_permission(anonymous, as_outsider):
    assert anonymous.post(MATCH, match_params(patient_resource())).status_code == 401
    response = as_outsider.post(MATCH, match_params(patient_resource()))
    assert response.status_code == 403
    assert outcome_issues(response)[0]["code"] == "forbidden"


def test_match_finds_by_identifier_of_a_merged_record_the_survivor(as_integrator, people, steward):
    from matching.merging import merge_patients

    smith, namesake, _ = people
    merge_patients(survivor=namesake, duplicate=smith, actor=steward, reason="same man")
    probe = patient_resource(mrn="77")
    found = entries(as_integrator.post(MATCH, match_params(probe)))
    ids = [e["resource"]["id"] for e in found]
    assert ids[0] == str(namesake.uuid) and str(smith.uuid) not in ids
    assert (MRN_SYSTEM, "77") in {(i["system"], i["value"]) for i in found[0]["resource"]["identifier"]}
