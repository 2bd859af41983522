"""Claims on queue candidates, so two stewards don't work the same pair.

A claim is a short lease (``CLAIM_MINUTES``): a steward who walks away does not block
the pair for long, and one who keeps working renews it with every action. Claims are
a lock, not a decision, so they are written with ``update()`` and leave no history
(the candidate's history excludes the claim fields).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.formats import time_format

from matching.models import CandidateStatus, MatchCandidate
from patients.errors import PatientConflict

CLAIM_MINUTES = 15


class CandidateClaimed(PatientConflict):
    """Another steward holds an unexpired claim on the pair."""

    code = "claimed"

    def __init__(self, *, holder, until: datetime) -> None:
        local = timezone.localtime(until)
        super().__init__(
            f"{holder.get_username()} is reviewing this pair until {time_format(local, 'H:i')}; "
            "pick another one or try again later."
        )
        self.holder = holder
        self.until = until


class CandidateDecided(PatientConflict):
    """The pair was decided (merged, linked, not a duplicate) since it was read."""

    code = "decided"


def claim_expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(minutes=CLAIM_MINUTES)


def claimed_by_other(candidate: MatchCandidate, user, *, now: datetime | None = None) -> bool:
    """Whether someone other than ``user`` holds an unexpired claim (no query)."""
    now = now or timezone.now()
    return (
        candidate.claimed_by_id is not None
        and candidate.claimed_by_id != user.pk
        and candidate.claimed_until is not None
        and candidate.claimed_until > now
    )


def free_for(user, *, now: datetime | None = None) -> Q:
    """Candidates ``user`` may claim: unclaimed, expired, or already theirs."""
    now = now or timezone.now()
    return Q(claimed_by__isnull=True) | Q(claimed_until__lte=now) | Q(claimed_by=user)


@transaction.atomic
def claim_candidate(*, candidate: MatchCandidate, actor) -> MatchCandidate:
    """Claim (or renew the claim on) an open candidate for ``actor``.

    Raises CandidateClaimed when another steward's claim has not expired, and
    CandidateDecided when the pair is no longer open.
    """
    # Locked and re-read: two stewards clicking "claim" at once must not both win.
    locked = (
        MatchCandidate.objects.select_for_update(of=("self",))
        .select_related("claimed_by")
        .get(pk=candidate.pk)
    )
    now = timezone.now()
    if locked.is_decided:
        raise CandidateDecided(f"This pair was already decided: {locked.get_status_display().lower()}.")
    if claimed_by_other(locked, actor, now=now):
        raise CandidateClaimed(holder=locked.claimed_by, until=locked.claimed_until)
    until = claim_expiry(now)
    MatchCandidate.objects.filter(pk=locked.pk).update(claimed_by=actor, claimed_until=until)
    locked.claimed_by, locked.claimed_until = actor, until
    return locked


@transaction.atomic
def release_claim(*, candidate: MatchCandidate, actor) -> None:
    """Drop ``actor``'s claim on the candidate; someone else's claim is left alone."""
    MatchCandidate.objects.filter(pk=candidate.pk, claimed_by=actor).update(
        claimed_by=None, claimed_until=None
    )


def queue_order() -> tuple[str, str]:
    """The queue's order: most likely first, then oldest first (a stable tie-break)."""
    return ("-probability", "pk")


def after(candidate: MatchCandidate) -> Q:
    """Candidates that come after ``candidate`` in ``queue_order``."""
    same = Q(probability=candidate.probability, pk__gt=candidate.pk)
    return Q(probability__lt=candidate.probability) | same


@transaction.atomic
def claim_next(*, actor, queue: QuerySet[MatchCandidate], skip: MatchCandidate | None = None):
    """Claim the first open candidate of ``queue`` that ``actor`` may work on.

    ``skip`` (the pair the steward passes over) is released, and the search starts
    after it in queue order, wrapping around to the top. Returns the claimed candidate
    or None. Rows another transaction is claiming right now are skipped, not waited for.
    """
    now = timezone.now()
    free = queue.filter(status=CandidateStatus.OPEN).filter(free_for(actor, now=now)).order_by(*queue_order())
    tries = [free]
    if skip is not None:
        release_claim(candidate=skip, actor=actor)
        free = free.exclude(pk=skip.pk)
        tries = [free.filter(after(skip)), free]
    for candidates in tries:
        candidate = candidates.select_for_update(skip_locked=True, of=("self",)).first()
        if candidate is not None:
            until = claim_expiry(now)
            MatchCandidate.objects.filter(pk=candidate.pk).update(claimed_by=actor, claimed_until=until)
            candidate.claimed_by, candidate.claimed_until = actor, until
            return candidate
    return None
