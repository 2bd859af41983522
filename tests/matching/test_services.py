from dataclasses import replace
from datetime import date

import pytest

from matching.model import MatchGrade
from matching.models import CandidateStatus, MatchCandidate, MatchModelVersion
from matching.services import (
    dismiss_candidate,
    mark_not_duplicate,
    match_patient,
    matching_disabled,
)
from patients.data import AddressData, ContactData, IdentifierData, NameData
from patients.services import delete_patient, patient_to_data, register_patient, update_patient
from tests.factories import SSN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db

OTHER_MRN = "urn:oid:1.2.36.146.595.217.0.2"


def john(**extra):
    return patient_data(family="Smith", given=("John",), mrn="77", **extra)


def jon_smyth_elsewhere(**extra):
    """The same man registered at another hospital, with typos in his name."""
    data = patient_data(family="Smyth", given=("Jon",), mrn=None, **extra)
    return replace(data, identifiers=(IdentifierData(system=OTHER_MRN, value="A-1"),))


def test_match_patient_finds_a_typo_duplicate_with_evidence(clerk):
    original = register_patient(data=john(), actor=clerk)
    register_patient(
        data=patient_data(
            family="Jones",
            given=("Mary",),
            mrn="78",
            birth_date=date(1990, 1, 1),
            gender="female",
            phone="+1 508 555 0199",
            postal_code="01001",
        )
    )
    results = match_patient(jon_smyth_elsewhere(), limit=5)
    assert [r.patient_uuid for r in results] == [original.uuid]
    best = results[0]
    assert best.grade in (MatchGrade.CERTAIN, MatchGrade.PROBABLE)
    fields = {e.field: e for e in best.result.evidence}
    assert fields["family"].value_a == "Smyth" and fields["family"].value_b == "Smith"
    assert fields["birth_date"].weight > 0
    assert fields["phone"].weight > 0
    assert best.blocks  # which blocks found it


def test_match_patient_writes_nothing_and_respects_min_grade(clerk):
    register_patient(data=john(), actor=clerk)
    before = MatchCandidate.objects.count()
    thin = patient_data(
        family="Smith",
        given=("Jane",),
        mrn=None,
        phone=None,
        birth_date=date(1950, 6, 6),
        gender="female",
        postal_code="99999",
    )
    assert match_patient(thin, min_grade=MatchGrade.PROBABLE) == []
    assert MatchCandidate.objects.count() == before


def test_registration_opens_a_candidate_with_model_version(clerk):
    original = register_patient(data=john(), actor=clerk)
    duplicate = register_patient(data=jon_smyth_elsewhere(), actor=clerk)
    candidate = MatchCandidate.objects.get()
    assert (candidate.patient_a, candidate.patient_b) == (original, duplicate)
    assert candidate.status == CandidateStatus.OPEN
    assert candidate.model_version == MatchModelVersion.objects.get(active=True)
    assert candidate.probability >= 0.3
    family = next(e for e in candidate.evidence["evidence"] if e["field"] == "family")
    assert (family["value_a"], family["value_b"]) == ("Smith", "Smyth")  # oriented a -> b
    assert candidate.evidence["blocks"]
    assert candidate.history.first().history_change_reason == "Opened by the matcher"


def test_update_rescores_an_open_candidate(clerk):
    register_patient(data=john(), actor=clerk)
    duplicate = register_patient(data=jon_smyth_elsewhere(email="jon@example.org"), actor=clerk)
    before = MatchCandidate.objects.get().probability
    fixed = replace(patient_to_data(duplicate), names=(NameData(family="Smith", given=("John",)),))
    update_patient(patient=duplicate, data=fixed, expected_version=1, actor=clerk)
    candidate = MatchCandidate.objects.get()
    assert candidate.probability >= before
    assert candidate.status == CandidateStatus.OPEN
    assert candidate.history.first().history_change_reason == "Re-scored by the matcher"


def test_an_update_that_leaves_the_score_as_it_was_writes_no_candidate_version(clerk):
    register_patient(data=john(), actor=clerk)
    duplicate = register_patient(data=jon_smyth_elsewhere(), actor=clerk)
    candidate = MatchCandidate.objects.get()
    versions = candidate.history.count()
    # Marital status is not compared: the same score, so nothing to write.
    same = replace(patient_to_data(duplicate), marital_status="M")
    update_patient(patient=duplicate, data=same, expected_version=1, actor=clerk)
    assert duplicate.history.count() == 2  # the patient did change
    candidate.refresh_from_db()
    assert candidate.history.count() == versions
    # A note (a re-opened pair's) is cleared by the next re-score, even at the same score.
    MatchCandidate.objects.filter(pk=candidate.pk).update(note="Re-opened: family changed.")
    update_patient(patient=duplicate, data=replace(same, marital_status="S"), expected_version=2, actor=clerk)
    candidate.refresh_from_db()
    assert candidate.note == "" and candidate.history.count() == versions + 1


def test_not_duplicate_stays_decided_unless_a_compared_field_changes(clerk, steward):
    register_patient(data=john(), actor=clerk)
    duplicate = register_patient(data=jon_smyth_elsewhere(), actor=clerk)
    candidate = mark_not_duplicate(
        candidate=MatchCandidate.objects.get(), actor=steward, reason="father and son"
    )

    # A change the comparison does not look at: the decision stands.
    data = replace(patient_to_data(duplicate), marital_status="M")
    update_patient(patient=duplicate, data=data, expected_version=1, actor=clerk)
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.NOT_DUPLICATE
    assert candidate.decided_by == steward and candidate.reason == "father and son"

    # Adding an email the other record lacks changes no comparison: still decided.
    data = replace(data, contacts=(*data.contacts, ContactData(system="email", value="js@example.org")))
    update_patient(patient=duplicate, data=data, expected_version=2, actor=clerk)
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.NOT_DUPLICATE

    # A compared field changes (the phone both records have): re-opened, with a note.
    data = replace(data, contacts=(ContactData(system="phone", value="+1 617 555 0177"),))
    update_patient(patient=duplicate, data=data, expected_version=3, actor=clerk)
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.OPEN
    assert "phone" in candidate.note and "not a duplicate" in candidate.note


def test_dismissed_pair_is_not_reopened_by_restore(clerk, steward):
    original = register_patient(data=john(), actor=clerk)
    register_patient(data=jon_smyth_elsewhere(), actor=clerk)
    dismiss_candidate(candidate=MatchCandidate.objects.get(), actor=steward)
    from patients.services import restore_patient

    delete_patient(patient=original, actor=clerk)
    restore_patient(patient=original, actor=clerk)
    assert MatchCandidate.objects.get().status == CandidateStatus.DISMISSED


def test_deleting_a_patient_closes_its_open_candidates(clerk):
    original = register_patient(data=john(), actor=clerk)
    register_patient(data=jon_smyth_elsewhere(), actor=clerk)
    delete_patient(patient=original, actor=clerk, reason="entered in error")
    candidate = MatchCandidate.objects.get()
    assert candidate.status == CandidateStatus.DISMISSED
    assert candidate.decided_by is None and "deleted" in candidate.note


def test_twins_are_never_certain(clerk):
    shared = {
        "family": "Okafor", "birth_date": date(2011, 7, 9), "mrn": None, "phone": "+1 617 555 0142",
        "multiple_birth": True,
    }  # fmt: skip
    a = patient_data(given=("Chidi",), multiple_birth_order=1, **shared)
    b = patient_data(given=("Chioma",), gender="female", multiple_birth_order=2, **shared)
    register_patient(data=replace(a, identifiers=(IdentifierData(system=SSN_SYSTEM, value="111-22-3333"),)))
    second = register_patient(
        data=replace(b, identifiers=(IdentifierData(system=SSN_SYSTEM, value="111-22-4444"),))
    )
    results = match_patient(b, exclude=second.pk)
    assert results  # found, and graded below certain
    assert all(r.grade != MatchGrade.CERTAIN for r in results)
    assert all(c.grade != MatchGrade.CERTAIN for c in MatchCandidate.objects.all())


def test_same_address_household_member_is_not_a_candidate(clerk):
    register_patient(data=john(), actor=clerk)
    wife = patient_data(
        family="Smith", given=("Alice",), gender="female", birth_date=date(1982, 11, 23), mrn="79"
    )
    wife = replace(wife, addresses=(AddressData(line=("1 Main St",), city="Boston", postal_code="02134"),))
    register_patient(data=wife, actor=clerk)
    assert not MatchCandidate.objects.filter(grade__in=["certain", "probable"]).exists()


def test_matching_can_be_switched_off_for_bulk_loads(clerk):
    register_patient(data=john(), actor=clerk)
    with matching_disabled():
        register_patient(data=jon_smyth_elsewhere(), actor=clerk)
    assert not MatchCandidate.objects.exists()
