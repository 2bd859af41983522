"""link_patients / unlink_patients: same person, both records kept."""

from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError

from matching.merging import MergeError, link_patients, merge_patients, unlink_patients
from matching.models import CandidateStatus, MatchCandidate
from patients.codes import LinkType
from patients.data import IdentifierData
from patients.models import Link, Patient
from patients.services import delete_patient, patient_to_data, register_patient
from tests.factories import patient_data

pytestmark = pytest.mark.django_db

OTHER_MRN = "urn:oid:1.2.36.146.595.217.0.2"


@pytest.fixture
def pair(clerk):
    first = register_patient(data=patient_data(), actor=clerk)
    second = patient_data(family="Smyth", given=("Jon",), mrn=None)
    second = register_patient(
        data=replace(second, identifiers=(IdentifierData(system=OTHER_MRN, value="A-1"),)), actor=clerk
    )
    return first, second


def seealso(patient):
    return list(
        Link.all_objects.filter(patient=patient, type=LinkType.SEEALSO).values_list("other_id", flat=True)
    )


def test_link_writes_seealso_both_ways_and_decides_the_candidate(pair, steward):
    a, b = pair
    candidate = MatchCandidate.objects.pair(a, b).get()
    link_patients(patient=a, other=b, actor=steward, reason="same man, two hospitals")
    assert seealso(a) == [b.pk] and seealso(b) == [a.pk]
    assert all(p.active for p in Patient.objects.filter(pk__in=[a.pk, b.pk]))
    assert list(Patient.objects.filter(pk__in=[a.pk, b.pk]).values_list("version", flat=True)) == [2, 2]
    candidate.refresh_from_db()
    assert (candidate.status, candidate.decided_by, candidate.reason) == (
        CandidateStatus.LINKED,
        steward,
        "same man, two hospitals",
    )
    link_row = Link.all_objects.get(patient=a)
    last = link_row.history.first()
    assert (last.history_user, last.history_change_reason) == (steward, "same man, two hospitals")
    # The links are part of each record's data, as any write sees them.
    assert [link.other for link in patient_to_data(a).links] == [b.uuid]


def test_linking_twice_is_refused(pair, steward):
    a, b = pair
    link_patients(patient=a, other=b, actor=steward, reason="same")
    with pytest.raises(MergeError, match="already linked"):
        link_patients(patient=b, other=a, actor=steward, reason="same")


def test_link_refuses_self_merged_away_deleted_and_no_reason(pair, clerk, steward):
    a, b = pair
    with pytest.raises(MergeError, match="itself"):
        link_patients(patient=a, other=a, actor=steward, reason="x")
    with pytest.raises(ValidationError):
        link_patients(patient=a, other=b, actor=steward, reason="")
    third = register_patient(data=patient_data(family="Jones", given=("Ann",), mrn="90", phone=None))
    merge_patients(survivor=a, duplicate=b, actor=steward, reason="dupe")
    with pytest.raises(MergeError, match=f"was merged into {a.uuid}"):
        link_patients(patient=third, other=b, actor=steward, reason="x")
    delete_patient(patient=third, actor=clerk)
    with pytest.raises(MergeError, match="deleted"):
        link_patients(patient=third, other=a, actor=steward, reason="x")


def test_unlink_removes_both_links_and_puts_the_pair_back_in_the_queue(pair, steward):
    a, b = pair
    link_patients(patient=a, other=b, actor=steward, reason="same")
    unlink_patients(patient=b, other=a, actor=steward, reason="not the same after all")
    assert seealso(a) == seealso(b) == []
    candidate = MatchCandidate.objects.pair(a, b).get()
    assert candidate.status == CandidateStatus.OPEN and "link was removed" in candidate.note
    assert list(Patient.objects.filter(pk__in=[a.pk, b.pk]).values_list("version", flat=True)) == [3, 3]
    removed = Link.history.filter(history_type="-")
    assert {(h.history_user, h.history_change_reason) for h in removed} == {
        (steward, "not the same after all")
    }


def test_unlinking_records_that_are_not_linked_is_refused(pair, steward):
    a, b = pair
    with pytest.raises(MergeError, match="not linked"):
        unlink_patients(patient=a, other=b, actor=steward, reason="x")
