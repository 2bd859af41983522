"""Patient/$ihe-pix (IHE PIXm ITI-83) and Patient/$unmerge, which restores PIX resolution."""

from __future__ import annotations

import pytest

from matching.merging import merge_patients
from matching.models import Merge, MergeStatus
from patients.models import Identifier, Organization
from patients.services import delete_patient, register_patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, patient_data
from tests.fhir.conftest import BASE, outcome_issues

PIX = f"{BASE}/Patient/$ihe-pix"
UNMERGE = f"{BASE}/Patient/$unmerge"
LAB = "urn:oid:1.2.3.99"


def pix(client, source: str, *targets: str):
    return client.get(PIX, [("sourceIdentifier", source), *(("targetSystem", t) for t in targets)])


def answer(response) -> tuple[set[tuple[str, str]], list[str]]:
    params = response.json()["parameter"]
    identifiers = {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in params
        if p["name"] == "targetIdentifier"
    }
    ids = [p["valueReference"]["reference"] for p in params if p["name"] == "targetId"]
    return identifiers, ids


@pytest.fixture
def records(clerk):
    """Smith (MRN 77 + SSN) and a duplicate registered at the lab (LAB|L-5)."""
    smith = register_patient(data=patient_data(), actor=clerk, reason="seed")
    Identifier.objects.create(patient=smith, system=SSN_SYSTEM, value="123-45-6789")
    dupe = register_patient(
        data=patient_data(given=("Jon",), mrn=None, phone=None), actor=clerk, reason="seed"
    )
    Identifier.objects.create(patient=dupe, system=LAB, value="L-5")
    return smith, dupe


def test_pix_returns_the_other_identifiers_and_the_patient(as_integrator, records):
    smith, _ = records
    response = pix(as_integrator, f"{MRN_SYSTEM}|77")
    assert response.status_code == 200, response.content
    assert response.json()["resourceType"] == "Parameters"
    identifiers, ids = answer(response)
    assert identifiers == {(SSN_SYSTEM, "123-45-6789")}  # never the source identifier itself
    assert ids == [f"Patient/{smith.uuid}"]


def test_pix_follows_a_merge_and_filters_by_target_system(as_integrator, records, steward):
    smith, dupe = records
    merge_patients(survivor=smith, duplicate=dupe, actor=steward, reason="same man")
    identifiers, ids = answer(pix(as_integrator, f"{LAB}|L-5"))
    assert identifiers == {(MRN_SYSTEM, "77"), (SSN_SYSTEM, "123-45-6789")}
    assert ids == [f"Patient/{smith.uuid}"]
    identifiers, ids = answer(pix(as_integrator, f"{LAB}|L-5", MRN_SYSTEM))
    assert identifiers == {(MRN_SYSTEM, "77")} and ids == [f"Patient/{smith.uuid}"]
    identifiers, _ = answer(pix(as_integrator, f"{MRN_SYSTEM}|77", LAB, SSN_SYSTEM))
    assert identifiers == {(LAB, "L-5"), (SSN_SYSTEM, "123-45-6789")}


def test_pix_by_post_parameters(as_integrator, records):
    smith, _ = records
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "sourceIdentifier", "valueString": f"{MRN_SYSTEM}|77"},
            {"name": "targetSystem", "valueUri": SSN_SYSTEM},
        ],
    }
    identifiers, ids = answer(as_integrator.post(PIX, body))
    assert identifiers == {(SSN_SYSTEM, "123-45-6789")} and ids == [f"Patient/{smith.uuid}"]


def test_pix_by_logical_id(as_integrator, records):
    smith, _ = records
    identifiers, ids = answer(pix(as_integrator, f"http://testserver/fhir|Patient/{smith.uuid}"))
    assert identifiers == {(MRN_SYSTEM, "77"), (SSN_SYSTEM, "123-45-6789")} and ids == [
        f"Patient/{smith.uuid}"
    ]


def test_a_known_domain_without_a_holder_is_404(as_integrator, records):
    response = pix(as_integrator, f"{MRN_SYSTEM}|404404")
    assert response.status_code == 404
    issue = outcome_issues(response)[0]
    assert (issue["code"], issue["diagnostics"]) == (
        "not-found",
        "sourceIdentifier Patient Identifier not found",
    )


def test_an_organizations_domain_is_known(as_integrator, records):
    Organization.objects.create(name="Clinic", identifier_system="urn:oid:5.5.5")
    assert pix(as_integrator, "urn:oid:5.5.5|1").status_code == 404


def test_an_unknown_source_domain_is_400(as_integrator, records):
    response = pix(as_integrator, "urn:oid:0.0.0|77")
    assert response.status_code == 400
    issue = outcome_issues(response)[0]
    assert (issue["code"], issue["diagnostics"]) == (
        "code-invalid",
        "sourceIdentifier Assigning Authority not found",
    )


def test_an_unknown_target_system_is_403(as_integrator, records):
    response = pix(as_integrator, f"{MRN_SYSTEM}|77", SSN_SYSTEM, "urn:oid:0.0.0")
    assert response.status_code == 403
    issue = outcome_issues(response)[0]
    assert (issue["code"], issue["diagnostics"]) == ("code-invalid", "targetSystem not found")


def test_a_deleted_patient_is_404(as_integrator, records, clerk):
    smith, _ = records
    delete_patient(patient=smith, actor=clerk, reason="test")
    assert pix(as_integrator, f"{MRN_SYSTEM}|77").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        [],
        [("sourceIdentifier", "77")],
        [("sourceIdentifier", f"{MRN_SYSTEM}|")],
        [("sourceIdentifier", f"{MRN_SYSTEM}|77"), ("sourceIdentifier", f"{MRN_SYSTEM}|78")],
        [("sourceIdentifier", f"{MRN_SYSTEM}|77"), ("patient", "x")],
    ],
    ids=["missing", "no-system", "no-value", "twice", "unknown-parameter"],
)
def test_malformed_queries_are_400(as_integrator, records, query):
    response = as_integrator.get(PIX, query)
    assert response.status_code == 400
    assert outcome_issues(response)[0]["diagnostics"]


def test_pix_needs_read_permission(as_outsider, anonymous, records):
    assert pix(as_outsider, f"{MRN_SYSTEM}|77").status_code == 403
    assert pix(anonymous, f"{MRN_SYSTEM}|77").status_code == 401


# --- $unmerge ---------------------------------------------------------------------------


def unmerge_params(reason="Different people after all", **named) -> dict:
    params = []
    for name, value in named.items():
        name = name.replace("_", "-")
        if name == "merge":
            params.append({"name": name, "valueString": value})
        elif name.endswith("identifier"):
            params += [{"name": name, "valueIdentifier": v} for v in value]
        else:
            params.append({"name": name, "valueReference": {"reference": value}})
    if reason:
        params.append({"name": "reason", "valueString": reason})
    return {"resourceType": "Parameters", "parameter": params}


@pytest.fixture
def merged(records, steward):
    smith, dupe = records
    return merge_patients(survivor=smith, duplicate=dupe, actor=steward, reason="same man")


@pytest.mark.parametrize("how", ["reference", "identifier", "merge-id"])
def test_unmerge_restores_both_records_and_pix_resolution(as_steward, as_integrator, records, merged, how):
    smith, dupe = records
    named = {
        "reference": {"source_patient": f"Patient/{dupe.uuid}", "target_patient": f"Patient/{smith.uuid}"},
        "identifier": {"source_patient_identifier": [{"system": LAB, "value": "L-5"}]},
        "merge-id": {"merge": str(merged.uuid)},
    }[how]
    response = as_steward.post(UNMERGE, unmerge_params(**named))
    assert response.status_code == 200, response.content
    parts = {p["name"]: p["resource"] for p in response.json()["parameter"]}
    assert parts["outcome"]["issue"][0]["severity"] == "information"
    assert parts["source"]["id"] == str(dupe.uuid) and parts["source"]["active"] is True
    assert parts["result"]["id"] == str(smith.uuid)
    merged.refresh_from_db()
    assert merged.status == MergeStatus.UNMERGED and merged.unmerge_reason == "Different people after all"
    identifiers, ids = answer(pix(as_integrator, f"{LAB}|L-5"))
    assert ids == [f"Patient/{dupe.uuid}"] and identifiers == set()
    assert answer(pix(as_integrator, f"{MRN_SYSTEM}|77"))[0] == {(SSN_SYSTEM, "123-45-6789")}


def test_unmerge_twice_is_422(as_steward, merged):
    assert as_steward.post(UNMERGE, unmerge_params(merge=str(merged.uuid))).status_code == 200
    response = as_steward.post(UNMERGE, unmerge_params(merge=str(merged.uuid)))
    assert response.status_code == 422
    assert "already undone" in outcome_issues(response)[0]["diagnostics"]


def test_unmerge_refused_after_a_conflicting_change_lists_it(as_steward, merged, clerk):
    Identifier.objects.filter(system=LAB).delete()
    response = as_steward.post(UNMERGE, unmerge_params(merge=str(merged.uuid)))
    assert response.status_code == 422
    assert any("no longer on the surviving record" in i["diagnostics"] for i in outcome_issues(response))
    merged.refresh_from_db()
    assert merged.status == MergeStatus.MERGED


def test_unmerge_needs_a_reason(as_steward, merged):
    response = as_steward.post(UNMERGE, unmerge_params(reason=None, merge=str(merged.uuid)))
    assert response.status_code == 400
    assert outcome_issues(response)[0]["code"] == "required"


def test_unmerge_of_a_record_that_was_not_merged_is_422(as_steward, records, merged):
    smith, _ = records
    response = as_steward.post(UNMERGE, unmerge_params(source_patient=f"Patient/{smith.uuid}"))
    assert response.status_code == 422


def test_unmerge_with_the_wrong_target_is_422(as_steward, records, merged, clerk):
    _, dupe = records
    other = register_patient(
        data=patient_data(family="Other", mrn="90", phone=None), actor=clerk, reason="seed"
    )
    response = as_steward.post(
        UNMERGE, unmerge_params(source_patient=f"Patient/{dupe.uuid}", target_patient=f"Patient/{other.uuid}")
    )
    assert response.status_code == 422
    assert Merge.objects.get().status == MergeStatus.MERGED


def test_unmerge_by_unknown_merge_id_is_422_and_malformed_is_400(as_steward, merged):
    assert (
        as_steward.post(UNMERGE, unmerge_params(merge="00000000-0000-0000-0000-000000000000")).status_code
        == 422
    )
    assert as_steward.post(UNMERGE, unmerge_params(merge="nope")).status_code == 400


def test_unmerge_is_for_stewards(as_integrator, merged):
    response = as_integrator.post(UNMERGE, unmerge_params(merge=str(merged.uuid)))
    assert response.status_code == 403
    assert outcome_issues(response)[0]["code"] == "forbidden"
