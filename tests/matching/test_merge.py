"""merge_patients: the outcome, survivorship choices, history, candidates, preconditions."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from matching.merging import MergeChoices, MergeError, merge_patients
from matching.models import CandidateStatus, MatchCandidate, Merge, MergeStatus
from patients.codes import LinkType
from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData
from patients.errors import VersionConflict
from patients.models import Address, Contact, Identifier, Link, Name, Patient
from patients.queries import load_patient_data
from patients.services import delete_patient, register_patient
from search.models import PatientIndex
from search.queries import search_patients
from tests.factories import MRN_SYSTEM, OrganizationFactory, patient_data

pytestmark = pytest.mark.django_db

OTHER_MRN = "urn:oid:1.2.36.146.595.217.0.2"
REASON = "Same man, registered twice"


def john(**extra):
    return patient_data(family="Smith", given=("John",), mrn="77", **extra)


def jon_smyth(*, mrn: str = "A-1", email: str | None = "jon@example.org", **extra):
    """The same man registered at another hospital, with a typo and another address."""
    data = patient_data(family="Smyth", given=("Jon",), mrn=None, email=email, **extra)
    return replace(
        data,
        identifiers=(IdentifierData(system=OTHER_MRN, value=mrn),),
        addresses=(AddressData(line=("9 Elm St",), city="Cambridge", postal_code="02139", use="home"),),
    )


@pytest.fixture
def pair(clerk):
    survivor = register_patient(data=john(), actor=clerk)
    duplicate = register_patient(data=jon_smyth(), actor=clerk)
    return survivor, duplicate


def merge(pair, steward, **kwargs):
    survivor, duplicate = pair
    return merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason=REASON, **kwargs)


def rows(model, patient):
    return list(model.all_objects.filter(patient=patient).order_by("id"))


def test_merge_retires_the_duplicate_with_links_both_ways(pair, steward):
    survivor, duplicate = pair
    result = merge(pair, steward)
    survivor.refresh_from_db()
    duplicate.refresh_from_db()
    assert duplicate.active is False and survivor.active is True
    assert Link.all_objects.get(patient=duplicate, type=LinkType.REPLACED_BY).other == survivor
    assert Link.all_objects.get(patient=survivor, type=LinkType.REPLACES).other == duplicate
    assert (survivor.version, duplicate.version) == (2, 2)
    stored = Merge.objects.get()
    assert stored == result and stored.status == MergeStatus.MERGED
    assert (stored.actor, stored.reason) == (steward, REASON)
    assert (stored.survivor_version_before, stored.survivor_version_after) == (1, 2)
    assert (stored.duplicate_version_before, stored.duplicate_version_after) == (1, 2)
    assert stored.snapshot["duplicate"]["names"][0]["family"] == "Smyth"
    assert stored.snapshot["survivor"]["identifiers"][0]["value"] == "77"


def test_merge_moves_identifiers_so_they_resolve_to_the_survivor(pair, steward):
    survivor, duplicate = pair
    row_id = Identifier.objects.get(value="A-1").pk
    result = merge(pair, steward)
    assert Patient.objects.with_identifier(OTHER_MRN, "A-1").get() == survivor
    assert Identifier.objects.get(value="A-1").pk == row_id  # moved, not re-created
    assert [e["id"] for e in result.changes["identifiers_moved"]] == [row_id]
    assert not Identifier.objects.filter(patient=duplicate).exists()
    hits = search_patients(identifier=f"{OTHER_MRN}|A-1").hits
    assert [h.uuid for h in hits] == [survivor.uuid]


def test_search_index_flags_the_duplicate_and_indexes_the_survivor_with_its_names(pair, steward):
    survivor, duplicate = pair
    merge(pair, steward)
    assert PatientIndex.objects.get(patient=duplicate).merged is True
    row = PatientIndex.objects.get(patient=survivor)
    assert row.merged is False
    assert {"smith", "smyth"} <= set(row.family_names)
    assert f"{OTHER_MRN}|A-1" in row.identifier_keys
    assert "jon@example.org" in row.emails


def test_default_choice_both_copies_the_duplicates_rows_as_extra_current_rows(pair, steward):
    survivor, duplicate = pair
    dup_before = load_patient_data([duplicate.pk])[duplicate.pk]
    result = merge(pair, steward)
    names = rows(Name, survivor)
    assert [(n.family, n.primary, n.use) for n in names] == [
        ("Smith", True, "official"),
        ("Smyth", False, "official"),
    ]
    addresses = rows(Address, survivor)
    assert [(a.city, a.primary, a.use, a.period_end) for a in addresses] == [
        ("Boston", True, "", None),
        ("Cambridge", False, "home", None),
    ]
    # The same phone is not copied twice; the email is new.
    assert [(c.system, c.value) for c in rows(Contact, survivor)] == [
        ("phone", "+1 617 555 0100"),
        ("email", "jon@example.org"),
    ]
    assert result.changes["altered"] == []
    assert len(result.changes["copied"]) == 3
    # The duplicate keeps its own rows, unchanged: it stays readable.
    after = load_patient_data([duplicate.pk])[duplicate.pk]
    assert (after.names, after.addresses, after.contacts) == (
        dup_before.names,
        dup_before.addresses,
        dup_before.contacts,
    )


def test_choice_survivor_keeps_the_duplicates_rows_on_the_survivor_as_old(pair, steward):
    survivor, _ = pair
    merge(pair, steward, choices=MergeChoices(names="survivor", addresses="survivor", contacts="survivor"))
    today = timezone.localdate()
    names = rows(Name, survivor)
    assert [(n.family, n.primary, n.use) for n in names] == [
        ("Smith", True, "official"),
        ("Smyth", False, "old"),
    ]
    addresses = rows(Address, survivor)
    assert [(a.city, a.primary, a.use, a.period_end) for a in addresses] == [
        ("Boston", True, "", None),
        ("Cambridge", False, "old", today),
    ]
    email = Contact.objects.get(patient=survivor, system="email")
    assert (email.use, email.period_end) == ("old", today)


def test_choice_duplicate_makes_its_rows_current_and_the_survivors_old(pair, steward):
    survivor, _ = pair
    result = merge(
        pair, steward, choices=MergeChoices(names="duplicate", addresses="duplicate", contacts="duplicate")
    )
    today = timezone.localdate()
    names = rows(Name, survivor)
    assert [(n.family, n.primary, n.use) for n in names] == [
        ("Smith", False, "old"),
        ("Smyth", True, "official"),
    ]
    assert survivor.primary_name.family == "Smyth"
    addresses = rows(Address, survivor)
    assert [(a.city, a.primary, a.use, a.period_end) for a in addresses] == [
        ("Boston", False, "old", today),
        ("Cambridge", True, "home", None),
    ]
    # The phone both records have stays current; nothing of the survivor is dropped.
    contacts = {c.system: c for c in rows(Contact, survivor)}
    assert contacts["phone"].use == "home" and contacts["phone"].period_end is None
    assert contacts["email"].use == ""
    altered = {(e["model"], e["label"]): e for e in result.changes["altered"]}
    assert altered[("name", "John Smith")]["old"] == {"use": "official", "primary": True}
    assert altered[("name", "John Smith")]["new"] == {"use": "old", "primary": False}


def test_scalars_are_taken_from_the_duplicate_when_chosen(clerk, steward):
    org = OrganizationFactory()
    survivor = register_patient(data=john(marital_status="S"), actor=clerk)
    dup_data = replace(
        jon_smyth(),
        birth_date=date(1980, 3, 5),
        gender="other",
        marital_status="M",
        managing_organization=org.uuid,
        deceased_at=datetime(2024, 1, 2, tzinfo=UTC),
    )
    duplicate = register_patient(data=dup_data, actor=clerk)
    choices = MergeChoices(
        take_from_duplicate=frozenset({"birth_date", "gender", "managing_organization", "deceased"})
    )
    result = merge((survivor, duplicate), steward, choices=choices)
    survivor.refresh_from_db()
    assert (survivor.birth_date, survivor.gender, survivor.managing_organization) == (
        date(1980, 3, 5),
        "other",
        org,
    )
    assert survivor.deceased is True and survivor.deceased_at == datetime(2024, 1, 2, tzinfo=UTC)
    assert survivor.marital_status == "S"  # not chosen: the survivor's stays
    assert result.changes["scalars"]["gender"] == {"old": "male", "new": "other"}


def test_nothing_is_dropped_whatever_the_choices(pair, steward):
    survivor, duplicate = pair
    before = load_patient_data([survivor.pk, duplicate.pk])
    merge(pair, steward, choices=MergeChoices(names="survivor", addresses="duplicate", contacts="survivor"))
    after = load_patient_data([survivor.pk])[survivor.pk]

    def families(d):
        return {n.family for n in d.names}

    assert families(after) == families(before[survivor.pk]) | families(before[duplicate.pk])
    assert {a.city for a in after.addresses} == {"Boston", "Cambridge"}
    assert {c.normalized_value for c in after.contacts} == {"+16175550100", "jon@example.org"}
    assert {i.value for i in after.identifiers} == {"77", "A-1"}


def test_invalid_choices_are_a_clear_validation_error():
    with pytest.raises(ValidationError) as exc:
        MergeChoices(take_from_duplicate=frozenset({"shoe_size"}), names="mine")
    assert "shoe_size" in str(exc.value) and "names" in exc.value.message_dict


def test_every_written_row_carries_the_actor_and_reason_in_its_history(pair, steward):
    survivor, duplicate = pair
    result = merge(pair, steward, choices=MergeChoices(names="duplicate"))
    written = [
        Identifier.objects.get(value="A-1"),
        *[Name.objects.get(pk=e["id"]) for e in result.changes["copied"] if e["model"] == "name"],
        *[Name.objects.get(pk=e["id"]) for e in result.changes["altered"]],
        *Link.all_objects.filter(pk__in=result.changes["links_created"]),
        Patient.objects.get(pk=survivor.pk),
        Patient.objects.get(pk=duplicate.pk),
        result,
    ]
    for row in written:
        last = row.history.order_by("-history_id").first()
        assert (last.history_user, last.history_change_reason) == (steward, REASON), row


def test_merge_settles_the_pair_and_closes_the_duplicates_other_candidates(pair, clerk, steward):
    survivor, duplicate = pair
    third = register_patient(data=jon_smyth(mrn="A-2", email=None), actor=clerk)
    pair_candidate = MatchCandidate.objects.pair(survivor, duplicate).get()
    other = MatchCandidate.objects.pair(duplicate, third).get()
    assert other.status == CandidateStatus.OPEN
    result = merge(pair, steward)
    pair_candidate.refresh_from_db()
    other.refresh_from_db()
    assert (pair_candidate.status, pair_candidate.decided_by, pair_candidate.reason) == (
        CandidateStatus.MERGED, steward, REASON,
    )  # fmt: skip
    assert other.status == CandidateStatus.DISMISSED and "merged into" in other.note
    actions = {e["id"]: e["action"] for e in result.changes["candidates"]}
    assert actions[pair_candidate.pk] == "merged" and actions[other.pk] == "closed"
    # The survivor was re-matched: the third record is its candidate now.
    assert MatchCandidate.objects.pair(survivor, third).get().status == CandidateStatus.OPEN
    assert not MatchCandidate.objects.open().involving(duplicate).exists()


def test_stale_versions_are_a_version_conflict_and_change_nothing(pair, steward):
    _, duplicate = pair
    with pytest.raises(VersionConflict) as exc:
        merge(pair, steward, survivor_version=1, duplicate_version=7)
    assert exc.value.field == "duplicate_version"
    duplicate.refresh_from_db()
    assert duplicate.active and duplicate.version == 1 and not Merge.objects.exists()
    merge(pair, steward, survivor_version=1, duplicate_version=1)
    assert Merge.objects.count() == 1


def test_a_merged_away_record_cannot_be_merged_again_nor_survive(pair, clerk, steward):
    survivor, duplicate = pair
    merge(pair, steward)
    other = register_patient(
        data=patient_data(family="Jones", given=("Ann",), mrn="90", phone=None), actor=clerk
    )
    with pytest.raises(MergeError, match="already merged into"):
        merge((survivor, duplicate), steward)
    with pytest.raises(MergeError, match=f"already merged into {survivor.uuid}"):
        merge((other, duplicate), steward)
    # Merging into a merged-away record is refused, naming the live one.
    with pytest.raises(MergeError, match=f"was merged into {survivor.uuid}; use that record"):
        merge((duplicate, other), steward)
    assert Merge.objects.count() == 1


def test_merge_refuses_self_deleted_records_and_a_missing_reason(pair, clerk, steward):
    survivor, duplicate = pair
    with pytest.raises(MergeError, match="itself"):
        merge((survivor, survivor), steward)
    with pytest.raises(ValidationError):
        merge_patients(survivor=survivor, duplicate=duplicate, actor=steward, reason="  ")
    delete_patient(patient=duplicate, actor=clerk, reason="entered in error")
    with pytest.raises(MergeError, match="deleted; restore it first"):
        merge(pair, steward)


def test_choices_that_put_death_before_birth_are_refused(clerk, steward):
    survivor = register_patient(
        data=replace(john(), deceased_at=datetime(1990, 1, 1, tzinfo=UTC)), actor=clerk
    )
    duplicate = register_patient(data=replace(jon_smyth(), birth_date=date(1995, 1, 1)), actor=clerk)
    with pytest.raises(MergeError, match="date of death before the birth date"):
        merge(
            (survivor, duplicate),
            steward,
            choices=MergeChoices(take_from_duplicate=frozenset({"birth_date"})),
        )
    assert not Merge.objects.exists() and Patient.objects.get(pk=duplicate.pk).active


def test_preview_describes_the_merge_and_writes_nothing(pair, steward):
    survivor, duplicate = pair
    before = load_patient_data([survivor.pk, duplicate.pk])
    candidates = list(MatchCandidate.objects.values_list("pk", "status"))
    preview = merge(pair, steward, preview=True, choices=MergeChoices(names="duplicate"))
    assert preview.pk is None and preview.status == MergeStatus.MERGED
    assert [e["values"]["value"] for e in preview.changes["identifiers_moved"]] == ["A-1"]
    assert {e["values"].get("family") for e in preview.changes["copied"] if e["model"] == "name"} == {"Smyth"}
    assert all(e["id"] is None for e in preview.changes["copied"])
    assert preview.survivor_version_after == 2
    assert load_patient_data([survivor.pk, duplicate.pk]) == before
    assert not Merge.objects.exists() and not Link.all_objects.exists()
    assert list(MatchCandidate.objects.values_list("pk", "status")) == candidates
    assert PatientIndex.objects.get(patient=duplicate).merged is False
    assert Patient.objects.get(pk=survivor.pk).version == 1
    # The preview said what the merge then does.
    done = merge(pair, steward, choices=MergeChoices(names="duplicate"))
    assert done.changes["altered"] == preview.changes["altered"]


def test_an_inactive_duplicate_stays_recorded_as_inactive(clerk, steward):
    survivor = register_patient(data=john(), actor=clerk)
    duplicate = register_patient(data=replace(jon_smyth(), active=False), actor=clerk)
    result = merge((survivor, duplicate), steward)
    assert result.changes["duplicate_active"] is False


def test_merge_keeps_the_duplicates_own_links(clerk, steward):
    survivor = register_patient(data=john(), actor=clerk)
    mother = register_patient(
        data=patient_data(family="Smyth", given=("Ann",), mrn="5", phone=None), actor=clerk
    )
    data = replace(jon_smyth(), links=(LinkData(other=mother.uuid, type="refer"),))
    duplicate = register_patient(data=data, actor=clerk)
    merge((survivor, duplicate), steward)
    assert Link.all_objects.filter(patient=duplicate, type=LinkType.REFER, other=mother).exists()
    assert not Link.all_objects.filter(patient=survivor, type=LinkType.REFER).exists()
    assert Identifier.objects.get(patient=survivor, system=MRN_SYSTEM).value == "77"


def test_text_only_name_on_duplicate_is_copied(clerk, steward):
    survivor = register_patient(data=john(), actor=clerk)
    data = replace(
        jon_smyth(),
        names=(NameData(text="J. Smyth"),),
        contacts=(ContactData(system="phone", value="+1 617 555 0111"),),
    )
    duplicate = register_patient(data=data, actor=clerk)
    merge((survivor, duplicate), steward)
    assert [n.text for n in rows(Name, survivor)] == ["", "J. Smyth"]
