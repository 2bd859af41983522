"""The review queue and the candidate page: listing, filters, claims, and the
decisions that do not merge (link, not a duplicate, skip)."""

from dataclasses import replace
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from matching.claims import claim_candidate
from matching.models import CandidateStatus, MatchCandidate
from patients.codes import LinkType
from patients.models import Link
from tests.factories import patient_data
from tests.matching.pages import NO_STATIC_WARNING, make_pair, maria, maria_elsewhere, pair_url

pytestmark = pytest.mark.filterwarnings(NO_STATIC_WARNING)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def other_steward(db) -> User:
    user = User.objects.create_user("steward2", password="correct-horse-battery", is_staff=True)
    user.groups.add(Group.objects.get(name="steward"))
    return user


@pytest.fixture
def pairs(clerk):
    """Two open candidates, most likely first."""
    found = [make_pair(clerk), make_pair(clerk, first=maria(), second=maria_elsewhere())]
    return sorted(found, key=lambda c: (-c.probability, c.pk))


def listed(response) -> list[int]:
    return [row["candidate"].pk for row in response.context["rows"]]


# -- the queue ------------------------------------------------------------------------


def test_queue_lists_open_candidates_most_likely_first_with_grade_counts(client, steward, pairs):
    client.force_login(steward)
    okafor = patient_data(
        family="Okafor", given=("Chidi",), birth_date=date(1970, 7, 8), mrn="93", phone=None
    )
    decided = make_pair(steward, first=okafor, second=replace(okafor, identifiers=()))
    MatchCandidate.objects.filter(pk=decided.pk).update(status=CandidateStatus.NOT_DUPLICATE)

    response = client.get("/review/")

    assert listed(response) == [c.pk for c in pairs]
    counts = {g["value"]: g["count"] for g in response.context["grades"]}
    assert sum(counts.values()) == 2 == response.context["total"]
    page = response.content.decode()
    assert "John Smith" in page and "Jon Smyth" in page
    assert pair_url(pairs[0]) in page


def test_queue_filters_by_grade(client, steward, pairs):
    client.force_login(steward)
    grade = pairs[1].grade

    response = client.get("/review/", {"grade": grade})

    assert listed(response) == [c.pk for c in pairs if c.grade == grade]
    other = "possible" if grade != "possible" else "certain"
    assert listed(client.get("/review/", {"grade": other})) == [c.pk for c in pairs if c.grade == other]


def test_queue_filters_by_age(client, steward, pairs):
    client.force_login(steward)
    MatchCandidate.objects.filter(pk=pairs[0].pk).update(created_at=timezone.now() - timedelta(days=10))

    assert listed(client.get("/review/", {"age": "older-7"})) == [pairs[0].pk]
    assert listed(client.get("/review/", {"age": "7"})) == [pairs[1].pk]
    assert listed(client.get("/review/", {"age": "older-30"})) == []


def test_queue_filters_by_who_claimed(client, steward, other_steward, pairs):
    client.force_login(steward)
    claim_candidate(candidate=pairs[0], actor=steward)
    claim_candidate(candidate=pairs[1], actor=other_steward)

    assert listed(client.get("/review/", {"assignee": "me"})) == [pairs[0].pk]
    assert listed(client.get("/review/", {"assignee": "others"})) == [pairs[1].pk]
    assert listed(client.get("/review/", {"assignee": "unclaimed"})) == []
    page = client.get("/review/").content.decode()
    assert "steward2" in page  # who holds the other pair

    # An expired claim counts as unclaimed.
    MatchCandidate.objects.filter(pk=pairs[1].pk).update(claimed_until=timezone.now() - timedelta(minutes=1))
    assert listed(client.get("/review/", {"assignee": "unclaimed"})) == [pairs[1].pk]


def test_queue_answers_htmx_with_the_list_fragment_only(client, steward, pairs):
    client.force_login(steward)

    response = client.get("/review/", {"grade": ""}, **HTMX)

    page = response.content.decode()
    assert "<html" not in page and "John Smith" in page
    assert "HX-Request" in response["Vary"]


def test_queue_ignores_unknown_filter_values(client, steward, pairs):
    client.force_login(steward)

    response = client.get("/review/", {"grade": "bogus", "age": "forever", "page": "x"})

    assert response.status_code == 200
    assert listed(response) == [c.pk for c in pairs]
    # A valid filter beside an invalid one still applies.
    assert listed(client.get("/review/", {"grade": "bogus", "assignee": "me"})) == []


def test_review_next_claims_the_top_free_pair_and_opens_it(client, steward, other_steward, pairs):
    client.force_login(steward)
    claim_candidate(candidate=pairs[0], actor=other_steward)

    response = client.post("/review/next/")

    assert response.status_code == 302 and response.url == pair_url(pairs[1])
    pairs[1].refresh_from_db()
    assert pairs[1].claimed_by == steward


def test_review_next_keeps_the_queue_filters(client, steward, pairs):
    client.force_login(steward)
    grade = pairs[1].grade

    response = client.post("/review/next/", {"grade": grade})

    assert response.url.startswith(pair_url(next(c for c in pairs if c.grade == grade)))
    assert f"grade={grade}" in response.url


def test_review_next_with_an_empty_queue_says_so(client, steward):
    client.force_login(steward)

    response = client.post("/review/next/", follow=True)

    assert response.redirect_chain[-1][0] == "/review/"
    assert "No more open candidates" in response.content.decode()


def test_skip_releases_the_pair_and_opens_the_next(client, steward, pairs):
    client.force_login(steward)
    claim_candidate(candidate=pairs[0], actor=steward)
    skip = {"skip_a": pairs[0].patient_a.uuid, "skip_b": pairs[0].patient_b.uuid}

    response = client.post("/review/next/", skip)

    assert response.url == pair_url(pairs[1])
    pairs[0].refresh_from_db()
    assert pairs[0].claimed_by is None


# -- the candidate page ---------------------------------------------------------------


def test_candidate_page_shows_both_records_with_evidence(client, clerk, steward):
    client.force_login(steward)
    candidate = make_pair(clerk)

    response = client.get(pair_url(candidate))

    page = response.content.decode()
    rows = {row.key: row for row in response.context["rows"]}
    assert rows["names"].left == ["John Smith · official"]
    assert rows["names"].right == ["Jon Smyth · official"]
    assert rows["birth_date"].tone == "agree"
    assert rows["identifiers"].left[0].startswith("MR 77")
    assert {e.field for e in rows["names"].evidence} >= {"family", "given"}
    assert 'class="tone-agree" data-row="birth_date"' in page
    assert "family name: phonetic" in page
    assert f"version {candidate.model_version.version}" in page
    for block in candidate.blocks:
        assert block in page
    assert f"{candidate.probability:.4f}" in page


def test_candidate_page_shows_guard_rails_prominently(client, clerk, steward):
    twins = make_pair(clerk, first=maria(given=("Anna",)), second=maria(given=("Hanna",), mrn="92"))
    client.force_login(steward)

    page = client.get(pair_url(twins)).content.decode()

    assert twins.evidence["guard_rails"]
    assert 'class="banner banner-warn guard-rails" role="alert"' in page
    assert "twins" in page


def test_claim_and_release_from_the_candidate_page(client, steward, pairs):
    client.force_login(steward)
    candidate = pairs[0]

    response = client.post(pair_url(candidate, "claim"), follow=True)
    assert "You are reviewing this pair until" in response.content.decode()
    candidate.refresh_from_db()
    assert candidate.claimed_by == steward

    client.post(pair_url(candidate, "claim"), {"release": "1"})
    candidate.refresh_from_db()
    assert candidate.claimed_by is None


def test_a_pair_claimed_by_another_steward_is_read_only(client, steward, other_steward, pairs):
    candidate = pairs[0]
    claim_candidate(candidate=candidate, actor=other_steward)
    client.force_login(steward)

    page = client.get(pair_url(candidate)).content.decode()
    assert "steward2</strong> is reviewing this pair" in page
    assert "Not a duplicate</button>" not in page

    response = client.post(pair_url(candidate, "not-duplicate"), {"notdup-reason": "different people"})
    assert response.status_code == 409
    assert "steward2 is reviewing this pair until" in response.content.decode()
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.OPEN

    response = client.post(pair_url(candidate, "claim"), follow=True)
    assert "steward2 is reviewing this pair" in response.content.decode()


def test_not_a_duplicate_needs_a_reason(client, steward, pairs):
    client.force_login(steward)
    candidate = pairs[0]

    response = client.post(pair_url(candidate, "not-duplicate"), {"notdup-reason": "  "})

    assert response.status_code == 400
    assert "Say why these are different people." in response.content.decode()
    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.OPEN


def test_not_a_duplicate_is_recorded_and_the_next_pair_opens(client, steward, pairs):
    client.force_login(steward)
    candidate = pairs[0]

    response = client.post(pair_url(candidate, "not-duplicate"), {"notdup-reason": "father and son"})

    assert response.status_code == 302 and response.url == pair_url(pairs[1])
    candidate.refresh_from_db()
    assert (candidate.status, candidate.reason, candidate.decided_by) == (
        CandidateStatus.NOT_DUPLICATE,
        "father and son",
        steward,
    )
    assert candidate.claimed_by is None
    assert candidate.history.first().history_change_reason == "father and son"


def test_deciding_a_decided_pair_is_a_message_not_an_error(client, steward, pairs):
    client.force_login(steward)
    candidate = pairs[0]
    client.post(pair_url(candidate, "not-duplicate"), {"notdup-reason": "father and son"})

    response = client.post(pair_url(candidate, "not-duplicate"), {"notdup-reason": "again"})

    assert response.status_code == 409
    page = response.content.decode()
    assert "This pair was already decided: not a duplicate." in page
    assert "Decided: <strong>Not a duplicate</strong>" in page


def test_link_records_the_pair_as_one_person_and_keeps_both(client, steward, pairs):
    client.force_login(steward)
    candidate = pairs[1]

    response = client.post(
        pair_url(candidate, "link"), {"link-reason": "same woman, two hospitals"}, follow=True
    )

    candidate.refresh_from_db()
    assert candidate.status == CandidateStatus.LINKED
    a, b = candidate.patient_a, candidate.patient_b
    assert Link.objects.filter(patient=a, other=b, type=LinkType.SEEALSO).exists()
    assert Link.objects.filter(patient=b, other=a, type=LinkType.SEEALSO).exists()
    a.refresh_from_db()
    assert a.active and a.version == 2
    assert "as the same person" in response.content.decode()


def test_link_without_a_reason_gets_a_default_one(client, steward, pairs):
    client.force_login(steward)
    candidate = pairs[0]

    client.post(pair_url(candidate, "link"), {"link-reason": ""})

    link = Link.objects.get(patient=candidate.patient_a, type=LinkType.SEEALSO)
    assert link.reason.startswith("Same person, both records kept")


def test_queue_reads_a_fixed_number_of_queries(client, steward, pairs, django_assert_max_num_queries):
    client.force_login(steward)
    client.get("/review/")  # warm the session and permission caches of this client

    # Session, user, its permissions (user and group), counts per grade, the page's
    # count and rows, the names of both sides: none per row; then the access audit record
    # (savepoint, chain lock, insert, release).
    with django_assert_max_num_queries(13):
        response = client.get("/review/")

    assert len(response.context["rows"]) == 2
