"""Merging from the candidate page (survivorship choices, preview, stale pages), the
merge history with unmerge, the patient page and the dashboard."""

from dataclasses import replace
from datetime import date

import pytest

from matching.merging import merge_patients
from matching.models import CandidateStatus, Merge, MergeStatus
from patients.models import Patient
from patients.services import patient_to_data, update_patient
from tests.matching.pages import NO_STATIC_WARNING, john, jon_smyth_elsewhere, make_pair, pair_url

pytestmark = pytest.mark.filterwarnings(NO_STATIC_WARNING)


@pytest.fixture
def candidate(clerk):
    """John Smith (left) and Jon Smyth (right), whose birth date has day and month swapped."""
    return make_pair(clerk, first=john(), second=jon_smyth_elsewhere(birth_date=date(1980, 4, 3)))


def merge_form(candidate, **changes) -> dict:
    a, b = candidate.patient_a, candidate.patient_b
    a.refresh_from_db()
    b.refresh_from_db()
    data = {
        "survivor": "left",
        "left_version": a.version,
        "right_version": b.version,
        "reason": "same man, typo at registration",
        **dict.fromkeys(("gender", "birth_date", "deceased", "marital_status", "multiple_birth"), "left"),
        "managing_organization": "left",
        "names": "both",
        "addresses": "both",
        "contacts": "both",
    }
    return {**data, **changes}


def test_merge_with_survivorship_choices_keeps_the_chosen_values(client, steward, candidate):
    client.force_login(steward)
    left, right = candidate.patient_a, candidate.patient_b

    response = client.post(
        pair_url(candidate, "merge"), merge_form(candidate, survivor="right", birth_date="left", names="left")
    )

    assert response.status_code == 302 and response.url == f"/patients/{right.uuid}/"
    right.refresh_from_db()
    left.refresh_from_db()
    assert right.birth_date == date(1980, 3, 4)  # taken from the left record
    assert right.primary_name.display == "John Smith"  # the left record's names stay current
    assert right.names.get(family="Smyth").use == "old"
    assert set(right.identifiers.values_list("value", flat=True)) == {"77", "A-1"}
    assert not left.active
    merge = Merge.objects.get()
    assert (merge.survivor, merge.duplicate, merge.actor) == (right, left, steward)
    assert merge.changes["choices"]["take_from_duplicate"] == ["birth_date"]
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.MERGED and candidate.claimed_by is None

    page = client.get(response.url).content.decode()
    assert "Merged John Smith (1980-03-04) into" in page
    assert "Merged from" in page and f"/patients/{left.uuid}/" in page


def test_merge_needs_a_reason(client, steward, candidate):
    client.force_login(steward)

    response = client.post(pair_url(candidate, "merge"), merge_form(candidate, reason=""))

    assert response.status_code == 400
    assert not Merge.objects.exists()


def test_preview_shows_what_would_happen_and_saves_nothing(client, steward, candidate):
    client.force_login(steward)

    response = client.post(pair_url(candidate, "merge"), merge_form(candidate, preview="1"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "What this merge would do" in page
    assert "Identifier urn:oid:1.2.36.146.595.217.0.2|A-1 moves to the surviving record." in page
    assert not Merge.objects.exists()
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.OPEN and candidate.claimed_by is None
    candidate.patient_b.refresh_from_db()
    assert candidate.patient_b.active


def test_a_stale_page_gets_a_version_message_and_fresh_versions(client, clerk, steward, candidate):
    client.force_login(steward)
    stale = merge_form(candidate)
    right = candidate.patient_b
    data = replace(patient_to_data(right), marital_status="M")
    update_patient(patient=right, data=data, expected_version=right.version, actor=clerk, reason="married")

    response = client.post(pair_url(candidate, "merge"), stale)

    assert response.status_code == 409
    page = response.content.decode()
    assert "it was changed since you read it" in page
    assert not Merge.objects.exists()
    right.refresh_from_db()
    assert response.context["merge_form"]["right_version"].value() == right.version

    # Sent again from the refreshed page, it goes through.
    fresh = {**stale, "right_version": right.version}
    assert client.post(pair_url(candidate, "merge"), fresh).status_code == 302


def test_merging_an_already_merged_pair_is_a_message(client, steward, candidate):
    client.force_login(steward)
    form = merge_form(candidate)
    merge_patients(
        survivor=candidate.patient_a, duplicate=candidate.patient_b, actor=steward, reason="API merge"
    )

    response = client.post(pair_url(candidate, "merge"), form)

    assert response.status_code == 409
    assert "This pair was already decided: merged." in response.content.decode()
    assert Merge.objects.count() == 1


def test_merge_history_lists_merges_and_unmerge_restores_both(client, steward, candidate):
    client.force_login(steward)
    left, right = candidate.patient_a, candidate.patient_b
    client.post(pair_url(candidate, "merge"), merge_form(candidate))
    merge = Merge.objects.get()

    listing = client.get("/merges/").content.decode()
    assert f"/merges/{merge.uuid}/" in listing and "same man, typo at registration" in listing
    detail = client.get(f"/merges/{merge.uuid}/").content.decode()
    assert "moves to the surviving record" in detail and "Undo this merge" in detail

    refused = client.post(f"/merges/{merge.uuid}/unmerge/", {"reason": ""})
    assert refused.status_code == 400
    merge.refresh_from_db()
    assert merge.status == MergeStatus.MERGED

    response = client.post(f"/merges/{merge.uuid}/unmerge/", {"reason": "two different men"}, follow=True)
    page = response.content.decode()
    assert "are separate records again" in page and "two different men" in page
    merge.refresh_from_db()
    left.refresh_from_db()
    right.refresh_from_db()
    assert merge.status == MergeStatus.UNMERGED and merge.unmerged_by == steward
    assert left.active and right.active
    assert list(right.identifiers.values_list("value", flat=True)) == ["A-1"]
    assert list(left.identifiers.values_list("value", flat=True)) == ["77"]

    again = client.post(f"/merges/{merge.uuid}/unmerge/", {"reason": "twice"})
    assert again.status_code == 409
    assert "This merge was already undone" in again.content.decode()


def test_merge_history_filters_by_status(client, steward, candidate):
    client.force_login(steward)
    merge_patients(survivor=candidate.patient_a, duplicate=candidate.patient_b, actor=steward, reason="dup")

    assert len(client.get("/merges/", {"status": "merged"}).context["page"].object_list) == 1
    assert len(client.get("/merges/", {"status": "unmerged"}).context["page"].object_list) == 0
    assert len(client.get("/merges/", {"status": "nonsense"}).context["page"].object_list) == 1


def test_clerk_cannot_unmerge(client, clerk, steward, candidate):
    merge = merge_patients(
        survivor=candidate.patient_a, duplicate=candidate.patient_b, actor=steward, reason="x"
    )
    client.force_login(clerk)

    assert client.post(f"/merges/{merge.uuid}/unmerge/", {"reason": "no"}).status_code == 403
    merge.refresh_from_db()
    assert merge.status == MergeStatus.MERGED


# -- the patient page -----------------------------------------------------------------


def test_patient_page_shows_record_candidates_and_history(client, clerk, steward, candidate):
    left = candidate.patient_a
    data = replace(patient_to_data(left), marital_status="M")
    update_patient(patient=left, data=data, expected_version=1, actor=clerk, reason="married last year")
    client.force_login(steward)

    response = client.get(f"/patients/{left.uuid}/")

    page = response.content.decode()
    assert "John Smith" in page and "1980-03-04" in page and "urn:oid:1.2.36.146.595.217.0.1" in page
    assert pair_url(candidate) in page  # its open candidate, for a steward
    events = response.context["timeline"]
    assert events[0].who == clerk and events[0].why == "married last year"
    assert any("marital status — → M" in change.text for change in events[0].changes)
    assert events[-1].why == "seed"
    assert "Record registered (version 1)." in page


def test_patient_page_of_a_merged_record_points_to_the_survivor(client, clerk, steward, candidate):
    merge_patients(
        survivor=candidate.patient_a, duplicate=candidate.patient_b, actor=steward, reason="same man"
    )
    client.force_login(clerk)

    response = client.get(f"/patients/{candidate.patient_b.uuid}/")

    page = response.content.decode()
    assert "This record was merged into" in page
    assert f"/patients/{candidate.patient_a.uuid}/" in page
    assert response.context["candidate_rows"] == []
    assert pair_url(candidate) not in page
    assert any("Merged into" in c.text for event in response.context["timeline"] for c in event.changes)


def test_search_results_link_to_the_patient_page(client, clerk, candidate):
    client.force_login(clerk)

    page = client.get("/search/", {"q": "smith"}).content.decode()

    assert f"/patients/{candidate.patient_a.uuid}/" in page


# -- the dashboard --------------------------------------------------------------------


def test_dashboard_counts_patients_candidates_and_merges(client, steward, candidate):
    client.force_login(steward)
    merge = merge_patients(
        survivor=candidate.patient_a, duplicate=candidate.patient_b, actor=steward, reason="x"
    )

    response = client.get("/")

    context = response.context
    assert context["patients"] == Patient.objects.filter(active=True).count() == 1
    assert context["open_total"] == 0
    assert context["merges_total"] == 1 and context["unmerges_total"] == 0
    assert context["days"][-1] == {"day": merge.created_at.date(), "merges": 1, "unmerges": 0}
    page = response.content.decode()
    assert page.count('<rect class="bar series-merges"') == 30
    assert page.count('<rect class="bar series-unmerges"') == 30
    assert "1 merges" in page  # today's bar's tooltip
