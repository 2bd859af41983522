"""/api/v1/candidates/: the duplicate queue, and deciding a pair as the steward pages do."""

from datetime import date

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from matching.claims import claim_candidate
from matching.models import CandidateStatus, MatchCandidate, Merge
from patients.codes import LinkType
from patients.models import Link, Patient
from patients.services import patient_to_data, register_patient, update_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.patients.api.helpers import PATIENTS, error_fields, errors_of, patient_body, token_client

pytestmark = pytest.mark.django_db

CANDIDATES = "/api/v1/candidates/"
RESOLVE = "/api/v1/identifiers/resolve/"
FAMILIES = (
    "Abbott", "Baxter", "Carver", "Dalton", "Ellison", "Fletcher", "Garrick", "Holloway", "Ingram",
    "Jarvis", "Kendrick", "Lockwood", "Mercer", "Norwood", "Oakley", "Prescott", "Quimby", "Radcliffe",
    "Sterling", "Thornton",
)  # fmt: skip


def decide(client, candidate, **body):
    return client.post(f"{CANDIDATES}{candidate.uuid}/decide/", body, format="json")


def test_registration_returns_the_candidate_ids_of_this_endpoint(as_integrator, as_steward, clerk):
    first = register_patient(data=patient_data(mrn="77"), actor=clerk)
    response = as_integrator.post(PATIENTS, patient_body(given=["Jon"], mrn="78"), format="json")
    [opened] = response.json()["candidates"]
    assert opened["patient"] == str(first.uuid)
    candidate = as_steward.get(f"{CANDIDATES}{opened['id']}/").json()
    assert {candidate["patient_a"], candidate["patient_b"]} == {str(first.uuid), response.json()["id"]}
    assert candidate["probability"] == opened["probability"]


def test_retrieve_shows_both_patients_the_evidence_and_the_model(as_steward, pair):
    a, b, candidate = pair
    response = as_steward.get(f"{CANDIDATES}{candidate.uuid}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["patient_a"], body["patient_b"]) == (
        str(candidate.uuid),
        str(a.uuid),
        str(b.uuid),
    )
    assert body["status"] == "open" and body["decided_by"] is None and body["decided_at"] is None
    assert body["grade"] == candidate.grade and body["probability"] == candidate.probability
    assert body["model_version"] == candidate.model_version.version
    given = next(e for e in body["evidence"] if e["field"] == "given")
    assert (given["value_a"], given["value_b"], given["level"]) == ("John", "Jon", "nickname")
    assert body["blocks"]


def test_list_filters_by_status_grade_and_patient_and_orders(as_steward, pair, clerk, steward):
    _a, _b, candidate = pair
    far = register_patient(data=patient_data(given=("James",), mrn="79", phone=None), actor=clerk)
    everything = as_steward.get(CANDIDATES).json()
    assert everything["count"] == MatchCandidate.objects.count() >= 3
    probabilities = [c["probability"] for c in everything["results"]]
    assert probabilities == sorted(probabilities, reverse=True)
    ascending = [
        c["probability"] for c in as_steward.get(CANDIDATES, {"ordering": "probability"}).json()["results"]
    ]
    assert ascending == sorted(ascending)
    mine = as_steward.get(CANDIDATES, {"patient": str(far.uuid)}).json()["results"]
    assert mine and all(str(far.uuid) in (c["patient_a"], c["patient_b"]) for c in mine)
    certain = as_steward.get(CANDIDATES, {"grade": "certain"}).json()["results"]
    assert [c["id"] for c in certain] == [str(candidate.uuid)]
    decide(as_steward, candidate, decision="dismiss")
    assert [c["id"] for c in as_steward.get(CANDIDATES, {"status": "dismissed"}).json()["results"]] == [
        str(candidate.uuid)
    ]
    assert str(candidate.uuid) not in {
        c["id"] for c in as_steward.get(CANDIDATES, {"status": "open"}).json()["results"]
    }


@pytest.mark.parametrize(
    "params", [{"status": "maybe"}, {"grade": "certainly-not"}, {"patient": "x"}, {"ordering": "weight"}]
)
def test_bad_list_parameters_are_400(as_steward, params):
    response = as_steward.get(CANDIDATES, params)
    assert response.status_code == 400
    assert set(params) <= error_fields(response)


def test_unknown_candidate_is_404(as_steward):
    response = as_steward.get(f"{CANDIDATES}0b4f7f0e-51fa-4fd5-9c59-5a3c2a1d4d77/")
    assert response.status_code == 404
    assert (
        decide(
            as_steward, MatchCandidate(uuid="0b4f7f0e-51fa-4fd5-9c59-5a3c2a1d4d77"), decision="dismiss"
        ).status_code
        == 404
    )


def test_decide_merge_end_to_end_then_identifiers_resolve_to_the_survivor(as_steward, pair, steward):
    a, b, candidate = pair
    response = decide(
        as_steward, candidate, decision="merge", reason="Same MRN typed twice", survivor=str(b.uuid)
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (
        body["status"] == "merged"
        and body["decided_by"] == "steward"
        and body["reason"] == "Same MRN typed twice"
    )
    merge = Merge.objects.get(uuid=body["merge"])
    assert (merge.survivor, merge.duplicate) == (b, a)
    # a's MRN moved to the survivor: it resolves to b, and lists b's own MRN too.
    resolved = as_steward.get(RESOLVE, {"system": MRN_SYSTEM, "value": "77"}).json()
    assert resolved["patient"]["id"] == str(b.uuid)
    assert {i["value"] for i in resolved["identifiers"]} == {"77", "78"}
    assert Link.objects.filter(patient=a, other=b, type=LinkType.REPLACED_BY).exists()
    # Decided: a second decision is a conflict.
    again = decide(as_steward, candidate, decision="dismiss")
    assert again.status_code == 409
    assert errors_of(again)[0]["code"] == "decided"


def test_merge_survivor_defaults_to_patient_a_as_on_the_page(as_steward, pair):
    a, b, candidate = pair
    body = decide(as_steward, candidate, decision="merge", reason="same").json()
    merge = Merge.objects.get(uuid=body["merge"])
    assert merge.survivor == a and merge.duplicate == b


def test_merge_choices_are_applied(as_steward, pair):
    _a, _b, candidate = pair
    choices = {"names": "survivor", "take_from_duplicate": ["gender"]}
    body = decide(as_steward, candidate, decision="merge", reason="same", choices=choices).json()
    merge = Merge.objects.get(uuid=body["merge"])
    assert merge.changes["choices"]["names"] == "survivor"
    assert merge.changes["choices"]["take_from_duplicate"] == ["gender"]


def test_link_not_duplicate_and_dismiss_set_their_status(as_steward, clerk):
    statuses = {}
    for i, decision in enumerate(("link", "not-duplicate", "dismiss")):
        first = register_patient(data=patient_data(family=FAMILIES[i], mrn=f"1{i}", phone=None), actor=clerk)
        second = register_patient(
            data=patient_data(family=FAMILIES[i], given=("Jon",), mrn=f"2{i}", phone=None), actor=clerk
        )
        candidate = MatchCandidate.objects.pair(first, second).get()
        response = decide(as_steward, candidate, decision=decision, reason="twins, checked by phone")
        assert response.status_code == 200, response.json()
        statuses[decision] = response.json()["status"]
        assert response.json()["merge"] is None
    assert statuses == {"link": "linked", "not-duplicate": "not-duplicate", "dismiss": "dismissed"}


def test_not_duplicate_and_merge_need_a_reason(as_steward, pair):
    _, _, candidate = pair
    for decision in ("not-duplicate", "merge"):
        response = decide(as_steward, candidate, decision=decision)
        assert response.status_code == 400
        assert "reason" in error_fields(response)
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.OPEN and candidate.claimed_by is None  # claim released


def test_reason_may_come_from_the_header(as_steward, pair):
    _, _, candidate = pair
    response = as_steward.post(
        f"{CANDIDATES}{candidate.uuid}/decide/",
        {"decision": "not-duplicate"},
        format="json",
        HTTP_X_CHANGE_REASON=b"Different mothers".decode("latin-1"),
    )
    assert response.status_code == 200
    assert response.json()["reason"] == "Different mothers"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "maybe"}, "decision"),
        ({}, "decision"),
        (
            {"decision": "merge", "reason": "x", "survivor": "0b4f7f0e-51fa-4fd5-9c59-5a3c2a1d4d77"},
            "survivor",
        ),
        ({"decision": "merge", "reason": "x", "choices": {"names": "left"}}, "choices.names"),
        (
            {"decision": "merge", "reason": "x", "choices": {"take_from_duplicate": ["height"]}},
            "choices.take_from_duplicate[0]",
        ),
        ({"decision": "dismiss", "extra": 1}, "extra"),
    ],
)
def test_bad_decisions_are_400_naming_the_field(as_steward, pair, body, field):
    response = decide(as_steward, pair[2], **body)
    assert response.status_code == 400, response.json()
    assert field in error_fields(response)


def test_a_pair_another_steward_claimed_is_409_naming_the_holder(as_steward, pair):
    _, _, candidate = pair
    other = User.objects.create_user("steward2")
    other.groups.add(Group.objects.get(name="steward"))
    claim_candidate(candidate=candidate, actor=other)
    response = decide(as_steward, candidate, decision="dismiss")
    assert response.status_code == 409
    [error] = errors_of(response)
    assert error["code"] == "claimed" and error["claimed_by"] == "steward2"
    assert "steward2 is reviewing this pair" in error["message"]
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.OPEN


def test_a_stale_version_on_a_merge_decision_is_412(as_steward, pair, clerk):
    a, _b, candidate = pair
    update_patient(
        patient=a,
        data=patient_to_data(a).__class__(**{**patient_to_data(a).__dict__, "marital_status": "M"}),
        expected_version=1,
        actor=clerk,
    )
    response = decide(as_steward, candidate, decision="merge", reason="same", survivor_version=1)
    assert response.status_code == 412
    [error] = errors_of(response)
    assert (error["field"], error["current_version"]) == ("survivor_version", 2)
    assert not Merge.objects.exists()


def test_a_merge_the_service_refuses_is_409_and_writes_nothing(as_steward, pair, steward):
    _a, b, candidate = pair
    from patients.services import delete_patient

    delete_patient(patient=b, actor=steward, reason="test")
    candidate.refresh_from_db()
    candidate.status = CandidateStatus.OPEN  # deleting closed it; re-open to reach the service
    candidate.save()
    response = decide(as_steward, candidate, decision="merge", reason="same")
    assert response.status_code == 409
    [error] = errors_of(response)
    assert error["code"] == "merge-conflict" and "deleted" in error["message"]
    assert error["conflicts"] == [error["message"]]
    assert not Merge.objects.exists()


def test_merge_decision_needs_the_merge_permission(pair):
    reviewer = User.objects.create_user("reviewer")
    reviewer.user_permissions.add(*_perms("matching.review_candidate"))
    client = token_client(reviewer)
    response = decide(client, pair[2], decision="merge", reason="same")
    assert response.status_code == 403
    assert "needs the permission matching.merge_patients" in errors_of(response)[0]["message"]
    assert decide(client, pair[2], decision="dismiss").status_code == 200


def _perms(*codes):
    from django.contrib.auth.models import Permission

    return [
        Permission.objects.get(content_type__app_label=c.split(".")[0], codename=c.split(".")[1])
        for c in codes
    ]


@pytest.mark.parametrize("rows", [1, 20])
def test_candidate_list_query_count_does_not_grow(as_steward, clerk, rows, django_assert_max_num_queries):
    for i, family in enumerate(FAMILIES[:rows]):
        born = date(1900 + 3 * i, 1, 1)  # years apart: no pair across families
        for given, mrn in (("John", f"3{i}"), ("Jon", f"4{i}")):
            data = patient_data(
                family=family, given=(given,), birth_date=born, mrn=mrn, phone=None, postal_code=f"1{i:04}"
            )
            register_patient(data=data, actor=clerk)
    assert MatchCandidate.objects.count() == rows
    with django_assert_max_num_queries(11):  # auth 4-5, count, page, audit record 4
        response = as_steward.get(CANDIDATES)
    assert len(response.json()["results"]) == rows


@pytest.mark.parametrize(
    ("role", "expected"),
    [("steward", 200), ("integrator", 403), ("clerk", 403), ("auditor", 403), ("outsider", 403)],
)
@pytest.mark.parametrize("operation", ["list", "retrieve", "decide"])
def test_candidates_are_for_stewards(request, role, expected, operation, pair):
    client = token_client(request.getfixturevalue(role))
    candidate = pair[2]
    if operation == "list":
        response = client.get(CANDIDATES)
    elif operation == "retrieve":
        response = client.get(f"{CANDIDATES}{candidate.uuid}/")
    else:
        response = decide(client, candidate, decision="dismiss")
    assert response.status_code == expected
    if expected == 403:
        assert "needs the permission matching.review_candidate" in errors_of(response)[0]["message"]


@pytest.mark.parametrize("operation", ["list", "retrieve", "decide"])
def test_anonymous_candidate_requests_are_401(operation, pair):
    client, candidate = APIClient(), pair[2]
    url = CANDIDATES if operation == "list" else f"{CANDIDATES}{candidate.uuid}/"
    response = client.post(f"{url}decide/", {}, format="json") if operation == "decide" else client.get(url)
    assert response.status_code == 401


def test_patients_unchanged_when_a_decision_fails(as_steward, pair):
    a, b, candidate = pair
    decide(as_steward, candidate, decision="merge", reason="")
    assert [p.version for p in Patient.objects.filter(pk__in=[a.pk, b.pk]).order_by("pk")] == [1, 1]
