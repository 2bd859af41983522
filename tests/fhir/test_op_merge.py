"""Patient/$merge: references and identifiers, result-patient, preview, reason, errors."""

from __future__ import annotations

from datetime import date

import pytest

from matching.models import Merge
from patients.models import Address, Contact, Identifier, Link, Name, Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, patient_data
from tests.fhir.conftest import BASE, expressions, outcome_issues

MERGE = f"{BASE}/Patient/$merge"


def merge_params(*, source=None, target=None, reason="Same man, registered twice", **extra) -> dict:
    params = []
    if source is not None:
        params.append({"name": "source-patient", "valueReference": {"reference": source}})
    if target is not None:
        params.append({"name": "target-patient", "valueReference": {"reference": target}})
    if reason:
        params.append({"name": "reason", "valueString": reason})
    for name, value in extra.items():
        name = name.replace("_", "-")
        if isinstance(value, bool):
            params.append({"name": name, "valueBoolean": value})
        elif name == "result-patient":
            params.append({"name": name, "resource": value})
        else:
            for ident in value:
                params.append({"name": name, "valueIdentifier": ident})
    return {"resourceType": "Parameters", "parameter": params}


def out(response, name: str) -> dict:
    return next(p["resource"] for p in response.json()["parameter"] if p["name"] == name)


def row_counts() -> tuple:
    return (
        *tuple(m.all_objects.count() for m in (Patient, Name, Identifier, Address, Contact, Link)),
        Merge.objects.count(),
    )


@pytest.fixture
def pair(clerk):
    """Target (survivor) Smith MRN 77 and source (duplicate) "Jon Smyth" MRN 78 with a national id."""
    target = register_patient(data=patient_data(), actor=clerk, reason="seed")
    source = register_patient(
        data=patient_data(family="Smyth", given=("Jon",), mrn="78", phone="+1 617 555 0199", gender="male"),
        actor=clerk,
        reason="seed",
    )
    Identifier.objects.create(patient=source, system=SSN_SYSTEM, value="123-45-6789")
    return target, source


def test_merge_by_reference_retires_the_source_and_answers_input_outcome_result(as_steward, pair, steward):
    target, source = pair
    body = merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}")
    response = as_steward.post(MERGE, body)
    assert response.status_code == 200, response.content
    assert out(response, "input") == body
    issue = out(response, "outcome")["issue"][0]
    assert issue["severity"] == "information" and "Merged" in issue["diagnostics"]
    result = out(response, "result")
    assert result["id"] == str(target.uuid) and result["meta"]["versionId"] == "2"
    assert {"77", "78", "123-45-6789"} <= {i["value"] for i in result["identifier"]}
    assert {"other": {"reference": f"Patient/{source.uuid}"}, "type": "replaces"} in result["link"]
    source.refresh_from_db()
    assert source.active is False
    merge = Merge.objects.get()
    assert (
        merge.survivor == target
        and merge.duplicate == source
        and merge.reason == "Same man, registered twice"
    )
    assert merge.actor == steward and str(merge.uuid) in issue["diagnostics"]


def test_merge_by_identifiers(as_steward, pair):
    _target, source = pair
    body = merge_params(
        source_patient_identifier=[
            {"system": MRN_SYSTEM, "value": "78"},
            {"system": SSN_SYSTEM, "value": "123-45-6789"},
        ],
        target_patient_identifier=[{"system": MRN_SYSTEM, "value": "77"}],
    )
    response = as_steward.post(MERGE, body)
    assert response.status_code == 200, response.content
    assert Merge.objects.get().duplicate == source


def test_reason_may_come_from_the_header(as_steward, pair):
    target, source = pair
    body = merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}", reason=None)
    response = as_steward.post(MERGE, body, HTTP_X_CHANGE_REASON="Duplicate from the ED")
    assert response.status_code == 200, response.content
    assert Merge.objects.get().reason == "Duplicate from the ED"


def test_missing_reason_is_400_and_nothing_is_merged(as_steward, pair):
    target, source = pair
    before = row_counts()
    response = as_steward.post(
        MERGE, merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}", reason=None)
    )
    assert response.status_code == 400
    issue = outcome_issues(response)[0]
    assert issue["code"] == "required" and "reason" in issue["diagnostics"]
    assert row_counts() == before


def test_preview_writes_nothing_and_shows_the_would_be_target(as_steward, pair):
    target, source = pair
    before = row_counts()
    body = merge_params(
        source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}", reason=None, preview=True
    )
    response = as_steward.post(MERGE, body)
    assert response.status_code == 200, response.content
    assert row_counts() == before
    target.refresh_from_db(), source.refresh_from_db()
    assert (target.version, source.version, source.active) == (1, 1, True)
    assert Identifier.objects.get(value="78").patient == source
    assert "Preview only: nothing was written" in out(response, "outcome")["issue"][0]["diagnostics"]
    result = out(response, "result")
    assert "meta" not in result
    assert {"77", "78", "123-45-6789"} <= {i["value"] for i in result["identifier"]}
    assert {"Smith", "Smyth"} <= {n.get("family") for n in result["name"]}


def test_result_patient_takes_the_sources_birth_date_and_keeps_only_the_targets_names_current(
    as_steward, pair, clerk
):
    target, source = pair
    # The source was born on another day; the client wants the source's birth date and
    # the target's names (the source's are kept, as old).
    from dataclasses import replace

    from patients.services import patient_to_data, update_patient

    update_patient(
        patient=source,
        data=replace(patient_to_data(source), birth_date=date(1980, 4, 3)),
        expected_version=None,
        actor=clerk,
        reason="fix",
    )
    read = as_steward.get(f"{BASE}/Patient/{target.uuid}").json()
    read["birthDate"] = "1980-04-03"
    read["identifier"] += [
        {"system": MRN_SYSTEM, "value": "78"},
        {"system": SSN_SYSTEM, "value": "123-45-6789"},
    ]
    body = merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}", result_patient=read)
    response = as_steward.post(MERGE, body)
    assert response.status_code == 200, response.content
    merge = Merge.objects.get()
    assert merge.changes["choices"] == {
        "take_from_duplicate": ["birth_date"],
        "names": "survivor",
        "addresses": "both",
        "contacts": "survivor",
    }
    result = out(response, "result")
    assert result["birthDate"] == "1980-04-03"
    assert {n["family"]: n.get("use") for n in result["name"]} == {"Smith": "official", "Smyth": "old"}


def test_result_patient_that_no_choice_can_produce_is_422_listing_each_element(as_steward, pair):
    target, source = pair
    read = as_steward.get(f"{BASE}/Patient/{target.uuid}").json()
    read["birthDate"] = "1999-01-01"
    read["name"].append({"family": "Newname", "given": ["X"]})
    before = row_counts()
    response = as_steward.post(
        MERGE,
        merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}", result_patient=read),
    )
    assert response.status_code == 422, response.content
    found = expressions(response)
    prefix = "Parameters.parameter[3].resource"
    assert {f"{prefix}.birthDate", f"{prefix}.name[1]", f"{prefix}.identifier"} <= found
    assert row_counts() == before


def test_result_patient_id_must_be_the_target(as_steward, pair):
    target, source = pair
    read = as_steward.get(f"{BASE}/Patient/{source.uuid}").json()
    response = as_steward.post(
        MERGE,
        merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}", result_patient=read),
    )
    assert response.status_code == 400
    assert "Parameters.parameter[3].resource.id" in expressions(response)


def test_stale_version_is_412(as_steward, pair):
    target, source = pair
    body = merge_params(source=f"Patient/{source.uuid}/_history/7", target=f"Patient/{target.uuid}")
    response = as_steward.post(MERGE, body)
    assert response.status_code == 412
    assert response["ETag"] == 'W/"1"'
    assert "Parameters.parameter[0].valueReference" in expressions(response)
    assert not Merge.objects.exists()


@pytest.mark.parametrize("version", ["9" * 19, "9" * 5000])  # 5000: int() refuses it (was a 500)
def test_a_version_no_patient_can_have_is_a_400(as_steward, pair, version):
    target, source = pair
    body = merge_params(source=f"Patient/{source.uuid}/_history/{version}", target=f"Patient/{target.uuid}")
    response = as_steward.post(MERGE, body)
    assert response.status_code == 400
    assert "Parameters.parameter[0].valueReference" in expressions(response)
    assert not Merge.objects.exists()


@pytest.mark.parametrize("which", ["self", "unknown", "no-identifier-holder", "two-holders", "foreign-base"])
def test_unresolvable_or_refused_patients_are_422(as_steward, pair, clerk, which):
    target, source = pair
    if which == "self":
        body = merge_params(source=f"Patient/{target.uuid}", target=f"Patient/{target.uuid}")
    elif which == "unknown":
        body = merge_params(
            source="Patient/00000000-0000-0000-0000-000000000000", target=f"Patient/{target.uuid}"
        )
    elif which == "no-identifier-holder":
        body = merge_params(
            target=f"Patient/{target.uuid}",
            source_patient_identifier=[{"system": MRN_SYSTEM, "value": "999"}],
        )
    elif which == "two-holders":
        # A value without a system held in two systems by two patients.
        other = register_patient(
            data=patient_data(family="Other", mrn=None, phone=None), actor=clerk, reason="seed"
        )
        Identifier.objects.create(patient=other, system="urn:oid:9.9", value="78")
        body = merge_params(target=f"Patient/{target.uuid}", source_patient_identifier=[{"value": "78"}])
    else:
        body = merge_params(
            source=f"https://elsewhere.example/fhir/Patient/{source.uuid}", target=f"Patient/{target.uuid}"
        )
    response = as_steward.post(MERGE, body)
    assert response.status_code == 422, response.content
    issue = outcome_issues(response)[0]
    expected = {
        "self": "business-rule",
        "unknown": "not-found",
        "no-identifier-holder": "not-found",
        "two-holders": "multiple-matches",
        "foreign-base": "not-found",
    }[which]
    assert issue["code"] == expected and issue["diagnostics"]
    assert not Merge.objects.exists()


def test_already_merged_source_is_422_naming_the_survivor(as_steward, pair, clerk):
    target, source = pair
    third = register_patient(
        data=patient_data(family="Third", mrn="79", phone=None), actor=clerk, reason="seed"
    )
    assert (
        as_steward.post(
            MERGE, merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}")
        ).status_code
        == 200
    )
    response = as_steward.post(
        MERGE, merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{third.uuid}")
    )
    assert response.status_code == 422
    issue = outcome_issues(response)[0]
    assert issue["code"] == "business-rule" and f"already merged into {target.uuid}" in issue["diagnostics"]


def test_reference_and_identifier_for_one_side_is_400(as_steward, pair):
    target, source = pair
    body = merge_params(
        source=f"Patient/{source.uuid}",
        target=f"Patient/{target.uuid}",
        source_patient_identifier=[{"system": MRN_SYSTEM, "value": "78"}],
    )
    assert as_steward.post(MERGE, body).status_code == 400


def test_missing_target_is_400(as_steward, pair):
    _, source = pair
    response = as_steward.post(MERGE, merge_params(source=f"Patient/{source.uuid}"))
    assert response.status_code == 400
    assert outcome_issues(response)[0]["code"] == "required"


@pytest.mark.parametrize("client", ["as_integrator", "as_auditor"])
def test_roles_without_merge_permission_get_403(request, pair, client):
    target, source = pair
    response = request.getfixturevalue(client).post(
        MERGE, merge_params(source=f"Patient/{source.uuid}", target=f"Patient/{target.uuid}")
    )
    assert response.status_code == 403
    issue = outcome_issues(response)[0]
    assert issue["code"] == "forbidden" and "matching.merge_patients" in issue["diagnostics"]
    assert not Merge.objects.exists()
