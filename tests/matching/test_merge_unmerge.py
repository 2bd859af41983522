"""unmerge_patients: exact restoration, and refusal (changing nothing) on a later conflict."""

from dataclasses import replace

import pytest
from django.core.exceptions import ValidationError

from matching.merging import MergeChoices, MergeError, merge_patients, unmerge_patients
from matching.models import CandidateStatus, MatchCandidate, Merge, MergeStatus
from patients.data import ContactData, IdentifierData, NameData
from patients.errors import PatientStateError
from patients.models import Identifier, Link, Patient
from patients.queries import load_patient_data
from patients.services import delete_patient, patient_to_data, register_patient, update_patient
from search.models import PatientIndex
from tests.factories import OrganizationFactory, patient_data

pytestmark = pytest.mark.django_db

OTHER_MRN = "urn:oid:1.2.36.146.595.217.0.2"
ALL_DUPLICATE = MergeChoices(
    take_from_duplicate=frozenset({"gender", "birth_date", "marital_status", "managing_organization"}),
    names="duplicate",
    addresses="duplicate",
    contacts="duplicate",
)


def jon_smyth(mrn="A-1", **extra):
    data = patient_data(family="Smyth", given=("Jon",), mrn=None, email="jon@example.org", **extra)
    return replace(data, identifiers=(IdentifierData(system=OTHER_MRN, value=mrn),))


@pytest.fixture
def pair(clerk):
    org = OrganizationFactory()
    survivor = register_patient(data=patient_data(marital_status="S"), actor=clerk)
    duplicate = register_patient(
        data=replace(jon_smyth(gender="other", marital_status="M"), managing_organization=org.uuid),
        actor=clerk,
    )
    return survivor, duplicate


def do_merge(pair, steward, choices=ALL_DUPLICATE):
    survivor, duplicate = pair
    return merge_patients(
        survivor=survivor, duplicate=duplicate, actor=steward, reason="dupe", choices=choices
    )


def state(*patients):
    """Everything an unmerge must restore or leave alone."""
    ids = [p.pk for p in patients]
    return (
        load_patient_data(ids),
        sorted(Link.all_objects.filter(patient_id__in=ids).values_list("patient_id", "other_id", "type")),
        dict(Patient.all_objects.filter(pk__in=ids).values_list("pk", "version")),
        sorted(MatchCandidate.objects.values_list("pk", "status")),
    )


@pytest.mark.parametrize("side", ["survivor", "duplicate", "both"])
def test_unmerge_restores_both_patients_exactly(pair, steward, side):
    survivor, duplicate = pair
    before = load_patient_data([survivor.pk, duplicate.pk])
    choices = replace(ALL_DUPLICATE, names=side, addresses=side, contacts=side)
    merge = do_merge(pair, steward, choices)
    result = unmerge_patients(merge=merge, actor=steward, reason="two different men")
    assert load_patient_data([survivor.pk, duplicate.pk]) == before
    duplicate.refresh_from_db()
    assert duplicate.active is True and duplicate.version == 3
    assert not Link.all_objects.exists()
    assert Patient.objects.with_identifier(OTHER_MRN, "A-1").get() == duplicate
    assert PatientIndex.objects.get(patient=duplicate).merged is False
    assert "smyth" not in PatientIndex.objects.get(patient=survivor).family_names
    merge.refresh_from_db()
    assert result.status == merge.status == MergeStatus.UNMERGED
    assert (merge.unmerged_by, merge.unmerge_reason) == (steward, "two different men")
    assert merge.unmerged_at is not None


def test_unmerge_history_carries_the_actor_and_reason(pair, steward):
    survivor, duplicate = pair
    merge = do_merge(pair, steward)
    unmerge_patients(merge=merge, actor=steward, reason="two different men")
    ident = Identifier.objects.get(value="A-1")
    for row in (ident, Patient.objects.get(pk=survivor.pk), Patient.objects.get(pk=duplicate.pk), merge):
        last = row.history.order_by("-history_id").first()
        assert (last.history_user, last.history_change_reason) == (steward, "two different men")
    removed = Link.history.filter(history_type="-")
    assert removed.count() == 2 and {h.history_change_reason for h in removed} == {"two different men"}


def test_unmerge_restores_the_candidates_the_merge_decided_or_closed(pair, clerk, steward):
    survivor, duplicate = pair
    third = register_patient(data=jon_smyth(mrn="A-2"), actor=clerk)
    pair_candidate = MatchCandidate.objects.pair(survivor, duplicate).get()
    other = MatchCandidate.objects.pair(duplicate, third).get()
    merge = do_merge(pair, steward, MergeChoices())
    unmerge_patients(merge=merge, actor=steward, reason="different")
    pair_candidate.refresh_from_db()
    other.refresh_from_db()
    assert pair_candidate.status == other.status == CandidateStatus.OPEN
    assert pair_candidate.decided_by is None


def test_unmerge_keeps_unrelated_later_changes_on_the_survivor(pair, clerk, steward):
    survivor, duplicate = pair
    before = load_patient_data([duplicate.pk])[duplicate.pk]
    merge = do_merge(pair, steward, MergeChoices())
    data = patient_to_data(survivor)
    new_phone = ContactData(system="phone", value="+1 617 555 0199", use="mobile")
    update_patient(
        patient=survivor, data=replace(data, contacts=(*data.contacts, new_phone)), expected_version=2
    )
    unmerge_patients(merge=merge, actor=steward, reason="different")
    after = load_patient_data([survivor.pk, duplicate.pk])
    assert after[duplicate.pk] == before
    assert "+16175550199" in {c.normalized_value for c in after[survivor.pk].contacts}
    assert "jon@example.org" not in {c.normalized_value for c in after[survivor.pk].contacts}


def conflict_after(pair, steward, change):
    """Merge, apply ``change``, and check the unmerge is refused and changes nothing."""
    survivor, duplicate = pair
    merge = do_merge(pair, steward)
    change(survivor, duplicate)
    before = state(survivor, duplicate)
    with pytest.raises(MergeError) as exc:
        unmerge_patients(merge=merge, actor=steward, reason="different")
    assert state(survivor, duplicate) == before
    assert Merge.objects.get().status == MergeStatus.MERGED
    assert "Nothing was changed" in exc.value.message
    return exc.value


def test_unmerge_is_refused_when_a_copied_name_was_edited(pair, clerk, steward):
    def edit(survivor, _):
        data = patient_to_data(survivor)
        names = tuple(replace(n, family="Smythe") if n.family == "Smyth" else n for n in data.names)
        update_patient(patient=survivor, data=replace(data, names=names), expected_version=None, actor=clerk)

    error = conflict_after(pair, steward, edit)
    assert "name 'Jon Smyth'" in error.message and "removed since" in error.message


def test_unmerge_is_refused_when_a_moved_identifier_was_removed(pair, clerk, steward):
    def drop(survivor, _):
        data = patient_to_data(survivor)
        identifiers = tuple(i for i in data.identifiers if i.value != "A-1")
        update_patient(patient=survivor, data=replace(data, identifiers=identifiers), expected_version=None)

    error = conflict_after(pair, steward, drop)
    assert f"identifier {OTHER_MRN}|A-1 is no longer on the surviving record" in error.message


def test_unmerge_is_refused_when_a_taken_scalar_or_marked_row_changed(pair, clerk, steward):
    def edit(survivor, _):
        data = patient_to_data(survivor)
        names = tuple(replace(n, use="usual") if n.family == "Smith" else n for n in data.names)
        update_patient(
            patient=survivor, data=replace(data, gender="male", names=names), expected_version=None
        )

    error = conflict_after(pair, steward, edit)
    assert "gender was changed since the merge" in error.message
    assert len(error.conflicts) >= 2  # every conflict is listed


def test_the_merged_away_record_cannot_be_changed_or_deleted(pair, clerk, steward):
    """The services refuse, so unmerge always finds the duplicate as the merge left it."""
    survivor, duplicate = pair
    do_merge(pair, steward, MergeChoices())
    duplicate = Patient.all_objects.get(pk=duplicate.pk)
    data = replace(patient_to_data(duplicate), names=(NameData(family="X"),))
    with pytest.raises(PatientStateError, match=f"merged into {survivor.uuid}"):
        update_patient(patient=duplicate, data=data, expected_version=None)
    with pytest.raises(PatientStateError, match=f"merged into {survivor.uuid}"):
        delete_patient(patient=duplicate, actor=clerk)


def test_a_survivor_cannot_be_deleted_before_unmerge(pair, clerk, steward):
    survivor, _ = pair
    do_merge(pair, steward, MergeChoices())
    with pytest.raises(PatientStateError, match="unmerge it before deleting"):
        delete_patient(patient=Patient.objects.get(pk=survivor.pk), actor=clerk)


def test_unmerge_waits_for_a_later_merge_of_the_survivor_to_be_undone(pair, clerk, steward):
    survivor, _ = pair
    first = do_merge(pair, steward, MergeChoices())
    final = register_patient(
        data=patient_data(family="Smith", given=("Johnny",), mrn="78", phone=None), actor=clerk
    )
    second = merge_patients(survivor=final, duplicate=survivor, actor=steward, reason="again")
    with pytest.raises(MergeError, match=f"merged into {final.uuid} since: undo that merge first"):
        unmerge_patients(merge=first, actor=steward, reason="wrong")
    unmerge_patients(merge=second, actor=steward, reason="wrong")
    unmerge_patients(merge=first, actor=steward, reason="wrong")
    assert Patient.objects.filter(active=True).count() == 3
    assert not Link.all_objects.exists()


def test_a_merge_is_undone_once(pair, steward):
    merge = do_merge(pair, steward)
    unmerge_patients(merge=merge, actor=steward, reason="different")
    with pytest.raises(MergeError, match="already undone"):
        unmerge_patients(merge=merge, actor=steward, reason="different")
    with pytest.raises(ValidationError):
        unmerge_patients(merge=merge, actor=steward, reason="")


def test_the_duplicate_can_be_merged_again_after_an_unmerge(pair, steward):
    merge = do_merge(pair, steward)
    unmerge_patients(merge=merge, actor=steward, reason="wrong survivor")
    survivor, duplicate = pair
    again = merge_patients(survivor=duplicate, duplicate=survivor, actor=steward, reason="the other way")
    assert Merge.objects.count() == 2 and again.status == MergeStatus.MERGED
