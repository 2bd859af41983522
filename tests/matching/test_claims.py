"""Claims on queue candidates: one steward at a time per pair, for 15 minutes."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from matching.claims import (
    CLAIM_MINUTES,
    CandidateClaimed,
    CandidateDecided,
    claim_candidate,
    claim_next,
    release_claim,
)
from matching.models import MatchCandidate
from matching.services import mark_not_duplicate
from tests.matching.pages import make_pair, maria, maria_elsewhere

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_steward(db) -> User:
    user = User.objects.create_user("steward2", password="correct-horse-battery", is_staff=True)
    user.groups.add(Group.objects.get(name="steward"))
    return user


def test_claim_lasts_fifteen_minutes_and_leaves_no_history(clerk, steward):
    candidate = make_pair(clerk)
    history = candidate.history.count()

    claimed = claim_candidate(candidate=candidate, actor=steward)

    candidate.refresh_from_db()
    assert candidate.claimed_by == steward == claimed.claimed_by
    left = candidate.claimed_until - timezone.now()
    assert timedelta(minutes=CLAIM_MINUTES - 1) < left <= timedelta(minutes=CLAIM_MINUTES)
    assert candidate.history.count() == history


def test_a_pair_claimed_by_someone_else_cannot_be_claimed(clerk, steward, other_steward):
    candidate = make_pair(clerk)
    claim_candidate(candidate=candidate, actor=steward)

    with pytest.raises(CandidateClaimed) as caught:
        claim_candidate(candidate=candidate, actor=other_steward)

    assert "steward is reviewing this pair until" in caught.value.message
    candidate.refresh_from_db()
    assert candidate.claimed_by == steward


def test_an_expired_claim_can_be_taken_over(clerk, steward, other_steward):
    candidate = make_pair(clerk)
    claim_candidate(candidate=candidate, actor=steward)
    MatchCandidate.objects.filter(pk=candidate.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))

    claim_candidate(candidate=candidate, actor=other_steward)

    candidate.refresh_from_db()
    assert candidate.claimed_by == other_steward


def test_claiming_again_renews_ones_own_claim(clerk, steward):
    candidate = make_pair(clerk)
    claim_candidate(candidate=candidate, actor=steward)
    MatchCandidate.objects.filter(pk=candidate.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))

    claim_candidate(candidate=candidate, actor=steward)

    candidate.refresh_from_db()
    assert candidate.claimed_until - timezone.now() > timedelta(minutes=CLAIM_MINUTES - 1)


def test_a_decided_pair_cannot_be_claimed(clerk, steward):
    candidate = make_pair(clerk)
    mark_not_duplicate(candidate=candidate, actor=steward, reason="father and son")

    with pytest.raises(CandidateDecided):
        claim_candidate(candidate=candidate, actor=steward)


def test_release_drops_only_ones_own_claim(clerk, steward, other_steward):
    candidate = make_pair(clerk)
    claim_candidate(candidate=candidate, actor=steward)

    release_claim(candidate=candidate, actor=other_steward)
    candidate.refresh_from_db()
    assert candidate.claimed_by == steward

    release_claim(candidate=candidate, actor=steward)
    candidate.refresh_from_db()
    assert (candidate.claimed_by, candidate.claimed_until) == (None, None)


def _two_pairs(clerk):
    pairs = [make_pair(clerk), make_pair(clerk, first=maria(), second=maria_elsewhere())]
    assert MatchCandidate.objects.count() == 2
    # Queue order: most likely first, then the older pair.
    strong, weak = sorted(pairs, key=lambda c: (-c.probability, c.pk))
    return strong, weak


def test_claim_next_takes_the_most_likely_free_pair_and_skips_claimed_ones(clerk, steward, other_steward):
    strong, weak = _two_pairs(clerk)
    claim_candidate(candidate=strong, actor=other_steward)

    claimed = claim_next(actor=steward, queue=MatchCandidate.objects.all())

    assert claimed.pk == weak.pk
    assert claim_next(actor=User.objects.create_user("third"), queue=MatchCandidate.objects.all()) is None


def test_claim_next_after_a_skip_moves_on_and_wraps_around(clerk, steward):
    strong, weak = _two_pairs(clerk)
    queue = MatchCandidate.objects.all()

    first = claim_next(actor=steward, queue=queue)
    second = claim_next(actor=steward, queue=queue, skip=first)
    third = claim_next(actor=steward, queue=queue, skip=second)

    assert [first.pk, second.pk, third.pk] == [strong.pk, weak.pk, strong.pk]
    weak.refresh_from_db()
    assert weak.claimed_by is None  # skipped: released for others
