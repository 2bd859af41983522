"""/api/v1/merges/: merge two patients (or preview it), list, read and unmerge."""

from datetime import date

import pytest
from rest_framework.test import APIClient

from matching.merging import merge_patients
from matching.models import Merge, MergeStatus
from patients.models import Identifier, Link, Name, Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.patients.api.helpers import error_fields, errors_of, token_client

pytestmark = pytest.mark.django_db

MERGES = "/api/v1/merges/"
RESOLVE = "/api/v1/identifiers/resolve/"


def body_for(survivor, duplicate, **extra) -> dict:
    return {
        "survivor": str(survivor.uuid),
        "duplicate": str(duplicate.uuid),
        "reason": "Same person",
        **extra,
    }


def _rows() -> tuple:
    return (
        Merge.objects.count(),
        Link.all_objects.count(),
        Name.all_objects.count(),
        tuple(Patient.all_objects.order_by("pk").values_list("version", "active")),
        tuple(Identifier.all_objects.order_by("pk").values_list("patient_id", "live")),
    )


def test_merge_then_unmerge_restores_the_duplicate(as_steward, pair):
    a, b, _ = pair
    response = as_steward.post(MERGES, body_for(a, b, survivor_version=1, duplicate_version=1), format="json")
    assert response.status_code == 201, response.json()
    merge = response.json()
    assert response["Location"].endswith(f"{MERGES}{merge['id']}/")
    assert (merge["survivor"], merge["duplicate"], merge["status"]) == (str(a.uuid), str(b.uuid), "merged")
    assert merge["actor"] == "steward" and merge["preview"] is False
    assert merge["changes"]["identifiers_moved"][0]["values"]["value"] == "78"
    assert merge["changes"]["summary"]
    assert "id" not in merge["changes"]["copied"][0]  # no database keys in the API
    assert as_steward.get(RESOLVE, {"system": MRN_SYSTEM, "value": "78"}).json()["patient"]["id"] == str(
        a.uuid
    )

    undone = as_steward.post(f"{MERGES}{merge['id']}/unmerge/", {"reason": "Twins after all"}, format="json")
    assert undone.status_code == 200, undone.json()
    assert undone.json()["status"] == "unmerged" and undone.json()["unmerged_by"] == "steward"
    assert undone.json()["unmerge_reason"] == "Twins after all"
    assert as_steward.get(RESOLVE, {"system": MRN_SYSTEM, "value": "78"}).json()["patient"]["id"] == str(
        b.uuid
    )
    b.refresh_from_db()
    assert b.active is True

    again = as_steward.post(f"{MERGES}{merge['id']}/unmerge/", {"reason": "again"}, format="json")
    assert again.status_code == 409
    assert errors_of(again)[0]["code"] == "merge-conflict"


def test_preview_writes_nothing_and_says_what_would_happen(as_steward, pair):
    a, b, _ = pair
    before = _rows()
    response = as_steward.post(MERGES, body_for(a, b, preview=True), format="json")
    assert response.status_code == 200, response.json()
    preview = response.json()
    assert preview["preview"] is True and preview["id"] is None
    assert preview["survivor_version_after"] == 2
    assert [i["values"]["value"] for i in preview["changes"]["identifiers_moved"]] == ["78"]
    assert _rows() == before


def test_idempotent_retry_returns_the_same_merge_and_merges_once(as_steward, pair):
    a, b, _ = pair
    first = as_steward.post(MERGES, body_for(a, b), format="json", HTTP_IDEMPOTENCY_KEY="merge-1")
    second = as_steward.post(MERGES, body_for(a, b), format="json", HTTP_IDEMPOTENCY_KEY="merge-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert second["Location"] == first["Location"]
    assert Merge.objects.count() == 1
    other = as_steward.post(MERGES, body_for(b, a), format="json", HTTP_IDEMPOTENCY_KEY="merge-1")
    assert other.status_code == 422


def test_a_stale_version_is_412_naming_it(as_steward, pair):
    a, b, _ = pair
    response = as_steward.post(MERGES, body_for(a, b, duplicate_version=7), format="json")
    assert response.status_code == 412
    [error] = errors_of(response)
    assert (error["field"], error["code"], error["current_version"]) == (
        "duplicate_version",
        "version-conflict",
        1,
    )
    assert not Merge.objects.exists()


def test_merging_an_already_merged_record_is_409(as_steward, pair, steward, clerk):
    a, b, _ = pair
    merge_patients(survivor=a, duplicate=b, actor=steward, reason="first")
    third = register_patient(data=patient_data(family="Other", mrn="90", phone=None), actor=clerk)
    response = as_steward.post(MERGES, body_for(third, b), format="json")
    assert response.status_code == 409
    [error] = errors_of(response)
    assert error["code"] == "merge-conflict" and error["field"] == "duplicate"
    assert "already merged" in error["message"]


def test_an_unmerge_refused_lists_every_conflict(as_steward, pair, steward, clerk):
    a, b, _ = pair
    merge = merge_patients(survivor=a, duplicate=b, actor=steward, reason="first")
    later = register_patient(data=patient_data(family="Other", mrn="90", phone=None), actor=clerk)
    merge_patients(survivor=later, duplicate=a, actor=steward, reason="then")
    response = as_steward.post(f"{MERGES}{merge.uuid}/unmerge/", {"reason": "undo"}, format="json")
    assert response.status_code == 409
    [error] = errors_of(response)
    assert error["code"] == "merge-conflict"
    assert any("undo that merge first" in c for c in error["conflicts"])
    assert Merge.objects.get(pk=merge.pk).status == MergeStatus.MERGED


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"survivor": "0b4f7f0e-51fa-4fd5-9c59-5a3c2a1d4d77"}, "survivor"),
        ({"duplicate": "not-a-uuid"}, "duplicate"),
        ({"survivor_version": 0}, "survivor_version"),
        ({"choices": {"contacts": "neither"}}, "choices.contacts"),
        ({"choices": {"take_from_duplicate": ["height"]}}, "choices.take_from_duplicate[0]"),
        ({"preview": "perhaps"}, "preview"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_merge_requests_are_400_naming_the_field(as_steward, pair, change, field):
    a, b, _ = pair
    response = as_steward.post(MERGES, {**body_for(a, b), **change}, format="json")
    assert response.status_code == 400, response.json()
    assert field in error_fields(response)
    assert not Merge.objects.exists()


def test_merging_a_record_into_itself_is_409(as_steward, pair):
    a, _, _ = pair
    response = as_steward.post(MERGES, body_for(a, a), format="json")
    assert response.status_code == 409


def test_unmerge_needs_a_reason_and_unknown_merges_are_404(as_steward, pair, steward):
    a, b, _ = pair
    merge = merge_patients(survivor=a, duplicate=b, actor=steward, reason="first")
    response = as_steward.post(f"{MERGES}{merge.uuid}/unmerge/", {}, format="json")
    assert response.status_code == 400 and "reason" in error_fields(response)
    unknown = "0b4f7f0e-51fa-4fd5-9c59-5a3c2a1d4d77"
    assert as_steward.get(f"{MERGES}{unknown}/").status_code == 404
    assert as_steward.post(f"{MERGES}{unknown}/unmerge/", {"reason": "x"}, format="json").status_code == 404


def test_list_filters_by_status_and_patient(as_steward, pair, steward):
    a, b, _ = pair
    merge = merge_patients(survivor=a, duplicate=b, actor=steward, reason="first")
    detail = as_steward.get(f"{MERGES}{merge.uuid}/").json()
    assert detail["id"] == str(merge.uuid) and detail["reason"] == "first"
    assert [m["id"] for m in as_steward.get(MERGES, {"patient": str(b.uuid)}).json()["results"]] == [
        str(merge.uuid)
    ]
    assert as_steward.get(MERGES, {"status": "unmerged"}).json()["results"] == []
    assert as_steward.get(MERGES, {"status": "sideways"}).status_code == 400


@pytest.mark.parametrize("rows", [1, 20])
def test_merge_list_query_count_does_not_grow(as_steward, steward, rows, django_assert_max_num_queries):
    from matching.services import matching_disabled

    with matching_disabled():
        for i in range(rows):
            data = patient_data(family=f"Fam{i}", birth_date=date(1950, 1, 1), mrn=f"6{i}", phone=None)
            survivor = register_patient(data=data, actor=steward)
            duplicate = register_patient(
                data=patient_data(family=f"Fam{i}", mrn=f"7{i}", phone=None), actor=steward
            )
            merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason="seed")
    with django_assert_max_num_queries(11):  # auth 5, count, page, audit record 4
        response = as_steward.get(MERGES)
    assert len(response.json()["results"]) == rows
    assert all(m["status"] == MergeStatus.MERGED for m in response.json()["results"])


ROLES = ("steward", "integrator", "clerk", "auditor", "outsider")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", ["list", "retrieve", "create", "unmerge"])
def test_merges_are_for_stewards(request, role, operation, pair, steward, clerk):
    a, b, _ = pair
    merge = merge_patients(survivor=a, duplicate=b, actor=steward, reason="first")
    third = register_patient(data=patient_data(family="Other", mrn="90", phone=None), actor=clerk)
    client = token_client(request.getfixturevalue(role))
    if operation == "list":
        response = client.get(MERGES)
    elif operation == "retrieve":
        response = client.get(f"{MERGES}{merge.uuid}/")
    elif operation == "create":
        response = client.post(MERGES, body_for(a, third, preview=True), format="json")
    else:
        response = client.post(f"{MERGES}{merge.uuid}/unmerge/", {"reason": "undo"}, format="json")
    if role == "steward":
        assert response.status_code == 200, response.json()
    else:
        assert response.status_code == 403
        needed = "view_merge" if operation in ("list", "retrieve") else "merge_patients"
        assert f"needs the permission matching.{needed}" in errors_of(response)[0]["message"]


@pytest.mark.parametrize("operation", ["list", "create"])
def test_anonymous_merge_requests_are_401(operation):
    client = APIClient()
    response = client.get(MERGES) if operation == "list" else client.post(MERGES, {}, format="json")
    assert response.status_code == 401
