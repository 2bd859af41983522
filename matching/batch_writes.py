"""Batch detection's candidate writes: one chunk of scored pairs in a few statements.

The rules are ``services.record_candidate``'s with ``changed=False`` (the batch
changes no patient), plus the closing of stale candidates that
``services.refresh_candidates_for`` does for one patient:

* a new pair at ``possible`` or above opens a candidate ("Opened by the matcher");
* an open candidate is re-scored ("Re-scored by the matcher", its note cleared),
  unless its score is what is stored already (``services.rescore``): then nothing is
  written;
* a decided one (merged, linked, not a duplicate, dismissed) stays as it is;
* an open candidate whose pair this pass scored below ``possible`` is dismissed by
  the system with a note, as the per-write matcher does. Open candidates whose pair
  the batch's blocks did not generate are left alone: the per-probe retrieval is
  wider (it crosses all names, tries mistyped dates), so a pair the batch did not
  meet may still be one the per-write matcher rightly opened.

Instead of three queries per pair, each chunk reads its existing candidates in one
locked query and writes with ``patients.copyrows.insert_with_history`` and
``update_with_history`` (COPY; the rows and history rows simple-history's bulk
functions write, with the same change reasons, no user). A
concurrent registration may open one of the chunk's pairs between the read and the
insert; then the chunk's transaction is rolled back and the chunk written again pair
by pair through ``record_candidate``, which handles exactly that race.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from matching.model import MatchResult
from matching.models import CandidateStatus, MatchCandidate, MatchModelVersion
from matching.services import OPENED, RESCORED, MatchOutcome, record_candidate, rescore
from patients.copyrows import insert_with_history, update_with_history
from patients.models import Patient

CLOSED = "Closed by the matcher: the batch scored the pair below possible."
SCORED_FIELDS = [
    "probability",
    "weight",
    "grade",
    "evidence",
    "blocks",
    "model_version",
    "note",
    "updated_at",
]
CLOSED_FIELDS = ["status", "decided_at", "decided_by", "note", "updated_at"]


@dataclass
class WriteCounts:
    opened: dict[str, int] = field(default_factory=dict)  # grade -> new candidates
    refreshed: dict[str, int] = field(default_factory=dict)  # grade -> open candidates re-scored
    unchanged: int = 0  # of those, scored as stored already: not written
    kept_decided: int = 0
    closed: int = 0


def _values(result: MatchResult, blocks: tuple[str, ...], version: MatchModelVersion) -> dict:
    # The batch's pairs are (low, high) already: no swap. The same shape as record_candidate's.
    outcome = MatchOutcome(0, None, result, blocks)
    return {
        "probability": result.probability,
        "weight": result.weight,
        "grade": result.grade,
        "evidence": outcome.evidence_json(),
        "blocks": list(blocks),
        "model_version": version,
    }


def write_chunk(
    *,
    scored: list[tuple[int, int]],
    found: list[tuple[int, int, tuple[str, ...], MatchResult]],
    version: MatchModelVersion,
) -> WriteCounts:
    """Write one chunk: ``scored`` are all pairs scored (any grade), ``found`` those at
    ``possible`` or above with their result. Pairs are (a, b), a < b; one transaction."""
    if not scored:
        return WriteCounts()
    try:
        with transaction.atomic():
            return _write_bulk(scored, found, version)
    except IntegrityError:
        return _write_one_by_one(found, version)


def _write_bulk(scored, found, version) -> WriteCounts:
    counts = WriteCounts()
    low = min(a for a, _ in scored)
    high = max(a for a, _ in scored)
    existing = {
        (c.patient_a_id, c.patient_b_id): c
        for c in MatchCandidate.objects.select_for_update().filter(
            patient_a_id__gte=low, patient_a_id__lte=high
        )
    }
    live = _live({p for a, b, _, _ in found for p in (a, b)})
    now = timezone.now()
    new, rescored, kept = [], [], set()
    for a, b, blocks, result in found:
        kept.add((a, b))
        if a not in live or b not in live:
            continue  # deleted since it was scored (the deletion closed its candidates)
        candidate = existing.get((a, b))
        grade = str(result.grade)
        if candidate is None:
            new.append(MatchCandidate(patient_a_id=a, patient_b_id=b, **_values(result, blocks, version)))
            _count(counts.opened, grade)
        elif candidate.status == CandidateStatus.OPEN:
            _count(counts.refreshed, grade)
            if rescore(candidate, _values(result, blocks, version)):
                candidate.updated_at = now
                rescored.append(candidate)
            else:
                counts.unchanged += 1
        else:
            counts.kept_decided += 1
    stale = []
    for pair in set(scored) - kept:
        candidate = existing.get(pair)
        if candidate is not None and candidate.status == CandidateStatus.OPEN:
            candidate.status, candidate.decided_at, candidate.decided_by = (
                CandidateStatus.DISMISSED,
                now,
                None,
            )
            candidate.note, candidate.updated_at = CLOSED, now
            stale.append(candidate)
    if new:
        insert_with_history(new, MatchCandidate, reason=OPENED)
    if rescored:
        update_with_history(rescored, MatchCandidate, SCORED_FIELDS, reason=RESCORED, when=now)
    if stale:
        update_with_history(stale, MatchCandidate, CLOSED_FIELDS, reason=CLOSED, when=now)
    counts.closed = len(stale)
    return counts


def _write_one_by_one(found, version) -> WriteCounts:
    """The race fallback: ``record_candidate`` per pair (stale ones wait for the next pass)."""
    counts = WriteCounts()
    with transaction.atomic():
        patients = Patient.objects.only("id", "uuid").in_bulk({p for a, b, _, _ in found for p in (a, b)})
        for a, b, blocks, result in found:
            if a not in patients or b not in patients:
                continue
            was_open = MatchCandidate.objects.filter(patient_a_id=a, patient_b_id=b).exists()
            outcome = MatchOutcome(b, patients[b].uuid, result, blocks)
            candidate = record_candidate(patient=patients[a], outcome=outcome, version=version, changed=False)
            if candidate is None:
                counts.kept_decided += 1
            else:
                _count(counts.refreshed if was_open else counts.opened, str(result.grade))
    return counts


def _live(ids: set[int]) -> set[int]:
    return set(Patient.objects.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()


def _count(counter: dict, key: str) -> None:
    counter[key] = counter.get(key, 0) + 1
