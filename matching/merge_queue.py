"""What merges, unmerges and links do to the candidate queue.

Every candidate a merge decides or closes is recorded with its state before and after,
so the unmerge can put it back, unless a steward has decided it since.
"""

from __future__ import annotations

from django.utils import timezone

from matching.models import CandidateStatus, MatchCandidate
from matching.services import matching_enabled, refresh_candidates_for
from matching.survivorship import jsonable, stamp
from patients.models import Patient


def candidate_state(candidate: MatchCandidate) -> dict:
    return jsonable(
        {
            "status": candidate.status,
            "decided_by_id": candidate.decided_by_id,
            "decided_at": candidate.decided_at,
            "reason": candidate.reason,
            "note": candidate.note,
        }
    )


def _set(candidate: MatchCandidate, state: dict, actor, reason: str) -> None:
    for field, value in state.items():
        setattr(candidate, field, MatchCandidate._meta.get_field(field).to_python(value))
    stamp(candidate, actor, reason).save()


def _decide(candidate: MatchCandidate, status: str, actor, reason: str) -> None:
    _set(
        candidate,
        {
            "status": status,
            "decided_by_id": getattr(actor, "pk", None),
            "decided_at": timezone.now(),
            "reason": reason,
            "note": "",
        },
        actor,
        reason,
    )


def lock_candidates(*patients: Patient) -> None:
    """Lock every candidate row of these patients in one sweep in key order: the order
    every writer uses (``matching.services.refresh_candidates_for`` too), taken before any
    candidate is read or written, so later sweeps of the same transaction find their rows
    already locked."""
    rows = MatchCandidate.objects.none()
    for patient in patients:
        rows |= MatchCandidate.objects.involving(patient)
    list(rows.select_for_update().order_by("pk").values_list("pk", flat=True))


def settle_for_merge(survivor: Patient, duplicate: Patient, actor, reason: str) -> list[dict]:
    """The pair's candidate becomes merged; the duplicate's other open candidates are
    closed (the survivor is re-matched after, so pairs that now concern it appear)."""
    entries = []
    lock_candidates(survivor, duplicate)
    pair = MatchCandidate.objects.pair(survivor, duplicate).first()
    if pair is not None:
        before = candidate_state(pair)
        _decide(pair, CandidateStatus.MERGED, actor, reason)
        entries.append({"id": pair.pk, "action": "merged", "before": before, "after": candidate_state(pair)})
    note = f"Closed: patient {duplicate.uuid} was merged into {survivor.uuid}."
    others = MatchCandidate.objects.open().involving(duplicate).order_by("pk")
    for candidate in others:
        before = candidate_state(candidate)
        state = {"status": CandidateStatus.DISMISSED, "decided_by_id": None, "decided_at": timezone.now()}
        _set(candidate, {**state, "note": note}, actor, note)
        entries.append(
            {"id": candidate.pk, "action": "closed", "before": before, "after": candidate_state(candidate)}
        )
    return entries


def rematch(patient: Patient, actor) -> tuple[list[dict], list[int]]:
    """Re-match a patient whose data changed: (entries for candidates it closed, ids it opened).

    Skipped inside ``matching_disabled()``, like every write.
    """
    if not matching_enabled():
        return [], []
    before = {c.pk: c for c in MatchCandidate.objects.involving(patient)}
    refresh_candidates_for(patient, actor=actor)
    closed, opened = [], []
    for candidate in MatchCandidate.objects.involving(patient).order_by("pk"):
        old = before.get(candidate.pk)
        if old is None:
            opened.append(candidate.pk)
        elif old.status == CandidateStatus.OPEN and candidate.status != CandidateStatus.OPEN:
            closed.append(
                {
                    "id": candidate.pk,
                    "action": "closed-by-rematch",
                    "before": candidate_state(old),
                    "after": candidate_state(candidate),
                }
            )
    return closed, opened


def restore_after_unmerge(entries: list[dict], actor, reason: str) -> None:
    """Put back candidates the merge decided or closed, unless someone decided them since."""
    for entry in sorted(entries, key=lambda e: e["id"]):
        candidate = MatchCandidate.objects.select_for_update().filter(pk=entry["id"]).first()
        if candidate is None or candidate_state(candidate) != entry["after"]:
            continue
        _set(candidate, entry["before"], actor, f"Merge undone: {reason}")


def mark_linked(patient: Patient, other: Patient, actor, reason: str) -> None:
    pair = MatchCandidate.objects.pair(patient, other).select_for_update().first()
    if pair is not None:
        _decide(pair, CandidateStatus.LINKED, actor, reason)


def reopen_unlinked(patient: Patient, other: Patient, actor, reason: str) -> None:
    """Unlinking undoes a "same person" decision: the pair goes back to the queue."""
    pair = MatchCandidate.objects.pair(patient, other).select_for_update().first()
    if pair is not None and pair.status == CandidateStatus.LINKED:
        note = f"Re-opened: the link was removed ({reason})."
        _set(
            pair,
            {"status": CandidateStatus.OPEN, "decided_by_id": None, "decided_at": None, "note": note},
            actor,
            note,
        )
