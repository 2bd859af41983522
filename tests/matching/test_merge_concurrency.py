"""Overlapping merges on real threads and connections: the locks decide, never Python."""

import threading
from dataclasses import replace

import pytest

from matching.integrity import check_integrity
from matching.merging import MergeError, merge_patients, unmerge_patients
from matching.models import MatchCandidate, Merge, MergeStatus
from patients.codes import LinkType
from patients.data import IdentifierData
from patients.models import Identifier, Link, Patient
from patients.queries import load_patient_data
from patients.services import register_patient
from patients.signals import patient_changed
from search.models import PatientIndex
from tests.concurrency import run_at_once, start_thread
from tests.factories import patient_data

OTHER_MRN = "urn:oid:1.2.36.146.595.217.0.2"


def _run_at_once(jobs: list) -> list:
    """Each callable on a thread of its own (own connection), all released together."""
    return run_at_once(lambda i: jobs[i](), len(jobs))


def _person(n: int, family: str = "Smith") -> Patient:
    data = patient_data(family=family, given=(f"John{n}",), mrn=None, phone=f"+1 617 555 01{n:02d}")
    return register_patient(
        data=replace(data, identifiers=(IdentifierData(system=OTHER_MRN, value=f"P-{n}"),))
    )


def _merge(survivor, duplicate, user):
    return lambda: merge_patients(survivor=survivor, duplicate=duplicate, actor=user, reason="concurrent")


def _assert_every_person_keeps_a_live_record(patients):
    for patient in patients:
        seen = [patient.pk]
        current = patient
        while (
            link := Link.all_objects.filter(patient=current, type=LinkType.REPLACED_BY).first()
        ) is not None:
            current = link.other
            assert current.pk not in seen, f"replaced-by cycle through {seen}"
            seen.append(current.pk)
        current.refresh_from_db()
        assert current.deleted_at is None and current.active, f"{patient.pk} ends at {current.pk}"


@pytest.mark.django_db(transaction=True)
def test_ten_identical_merges_produce_exactly_one(steward):
    survivor, duplicate = _person(1), _person(2)
    results = _run_at_once([_merge(survivor, duplicate, steward)] * 10)
    merges = [r for r in results if isinstance(r, Merge)]
    refused = [r for r in results if isinstance(r, MergeError)]
    assert len(merges) == 1 and len(refused) == 9, results
    assert all("already merged" in e.message for e in refused)
    assert Merge.objects.count() == 1
    assert Link.all_objects.filter(type=LinkType.REPLACED_BY).count() == 1
    assert Patient.objects.get(pk=survivor.pk).version == 2  # bumped once, not ten times
    assert check_integrity() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(4))
def test_crossing_merges_never_make_a_cycle_or_lose_a_person(steward, round_):
    a, b, c = _person(1), _person(2), _person(3)
    # A into B, B into A and B into C, all at once (in a varying start order).
    jobs = [_merge(b, a, steward), _merge(a, b, steward), _merge(c, b, steward)]
    jobs = jobs[round_ % 3 :] + jobs[: round_ % 3]
    results = _run_at_once(jobs)
    assert all(isinstance(r, Merge | MergeError) for r in results), results
    won = [r for r in results if isinstance(r, Merge)]
    assert 1 <= len(won) <= 2
    assert Merge.objects.filter(status=MergeStatus.MERGED).count() == len(won)
    # A into B and B into A can never both win.
    pairs = {(m.duplicate_id, m.survivor_id) for m in won}
    assert not {(a.pk, b.pk), (b.pk, a.pk)} <= pairs
    _assert_every_person_keeps_a_live_record([a, b, c])
    # Every identifier still resolves to exactly one record, live at the end of its chain.
    assert Identifier.objects.filter(live=True).count() == 3
    assert check_integrity() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_unmerges_undo_a_merge_once(steward):
    survivor, duplicate = _person(1), _person(2)
    before = load_patient_data([survivor.pk, duplicate.pk])
    merge = merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason="oops")
    results = _run_at_once([lambda: unmerge_patients(merge=merge, actor=steward, reason="undo")] * 5)
    assert len([r for r in results if isinstance(r, Merge)]) == 1, results
    assert all("already undone" in r.message for r in results if isinstance(r, MergeError))
    assert load_patient_data([survivor.pk, duplicate.pk]) == before
    assert check_integrity() == []


@pytest.mark.django_db(transaction=True)
def test_a_merge_that_fails_half_way_leaves_no_trace(steward):
    survivor, duplicate = _person(1), _person(2)
    before = load_patient_data([survivor.pk, duplicate.pk])

    def fail_on_the_duplicate(sender, *, patient, action, **kwargs):
        # Runs after every row of the merge is written: the last moment it can fail.
        if action == "merged" and patient.pk == duplicate.pk:
            raise RuntimeError("index unavailable")

    patient_changed.connect(fail_on_the_duplicate, dispatch_uid="test.fail_merge")
    try:
        with pytest.raises(RuntimeError):
            merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason="x")
    finally:
        patient_changed.disconnect(dispatch_uid="test.fail_merge")
    assert load_patient_data([survivor.pk, duplicate.pk]) == before
    assert not Merge.objects.exists() and not Link.all_objects.exists()
    assert Patient.objects.get(pk=duplicate.pk).active and Patient.objects.get(pk=survivor.pk).version == 1
    assert PatientIndex.objects.get(patient=duplicate).merged is False
    assert check_integrity() == []


@pytest.mark.django_db(transaction=True)
def test_a_patient_held_by_a_merge_can_still_be_matched_by_a_registration(steward):
    """Writers lock patients FOR NO KEY UPDATE, which a foreign-key check does not wait for.

    A registration that scores a patient a merge holds writes a candidate row pointing at
    it; the row's (deferred) foreign-key check share-locks the patient's key at COMMIT.
    Under FOR UPDATE that check queued behind the merge, and two writers each holding a
    patient the other's new rows pointed at deadlocked at COMMIT (the worker-kill fault
    test hit it). Here the registration commits while the merge still holds both rows.
    """
    survivor, duplicate = _person(1), _person(2)
    held, release = threading.Event(), threading.Event()

    def hold(sender, *, patient, action, **kwargs):
        if action == "merged" and patient.pk == duplicate.pk and not held.is_set():
            held.set()
            release.wait(timeout=60)

    patient_changed.connect(hold, dispatch_uid="test.hold_merge")
    outcome: dict = {}

    def merge():
        outcome["merge"] = merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason="x")

    def register():
        data = patient_data(family="Smith", given=("John1",), mrn=None, phone="+1 617 555 0101")
        ident = IdentifierData(system=OTHER_MRN, value="P-new")
        outcome["registered"] = register_patient(data=replace(data, identifiers=(ident,)))

    merging = start_thread(merge)
    try:
        assert held.wait(timeout=60), "the merge never reached its last write"
        registering = start_thread(register)
        registering.join(timeout=30)
        finished_while_held = not registering.is_alive()
    finally:
        release.set()
        merging.join(timeout=60)
        patient_changed.disconnect(dispatch_uid="test.hold_merge")
    registering.join(timeout=60)
    assert finished_while_held, "the registration waited for the merge's lock on the survivor"
    new = outcome["registered"]
    assert survivor.pk in {c.other(new) for c in MatchCandidate.objects.involving(new)}
    assert Merge.objects.get().status == MergeStatus.MERGED
    assert check_integrity() == []
