"""Steward services: merge (with survivorship), unmerge, link and unlink two patients.

Every service takes both patient rows ``FOR NO KEY UPDATE`` (the writers' lock, see
``patients.services._lock``) in primary-key order and only then
re-checks its preconditions: two overlapping requests (A into B while B into A, or ten
identical merges) queue on the same locks and the later ones see what the first did.
Nothing here is committed half-way: each call is one transaction, and the index and
candidate queue change inside it. See docs/merge.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from matching import merge_queue, survivorship
from matching.models import Merge, MergeStatus
from matching.survivorship import stamp
from patients.codes import LinkType
from patients.errors import PatientConflict, VersionConflict
from patients.models import Link, Patient
from patients.queries import load_patient_data
from patients.retry import retry_on_conflict
from patients.signals import patient_changed

Side = Literal["survivor", "duplicate", "both"]
SIDES = ("survivor", "duplicate", "both")


class MergeError(PatientConflict):
    """A merge, unmerge, link or unlink that cannot happen; ``conflicts`` lists why."""

    code = "merge-conflict"

    def __init__(self, message: str, *, conflicts: tuple[str, ...] = (), field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.conflicts = tuple(conflicts) or (message,)


@dataclass(frozen=True)
class MergeChoices:
    """The steward's survivorship choices. The default keeps everything current."""

    # Scalar fields taken from the duplicate instead of the survivor.
    take_from_duplicate: frozenset[str] = frozenset()
    # For names / addresses / contacts: whose rows are current after the merge.
    names: Side = "both"
    addresses: Side = "both"
    contacts: Side = "both"

    def __post_init__(self) -> None:
        fields = frozenset(self.take_from_duplicate)
        object.__setattr__(self, "take_from_duplicate", fields)
        errors = {}
        unknown = sorted(fields - survivorship.SCALAR_COLUMNS.keys())
        if unknown:
            allowed = ", ".join(survivorship.SCALAR_COLUMNS)
            errors["take_from_duplicate"] = (
                f"Unknown field(s) {', '.join(unknown)}; expected any of: {allowed}."
            )
        for kind in ("names", "addresses", "contacts"):
            if getattr(self, kind) not in SIDES:
                errors[kind] = f"Expected one of {', '.join(SIDES)}, not {getattr(self, kind)!r}."
        if errors:
            raise ValidationError(errors)


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why."})
    return reason


def _lock(*patients: Patient) -> list[Patient]:
    """Lock the rows in primary-key order (one fixed order: no deadlocks), fresh from the DB.

    Our own helper rather than ``patients.services._lock`` (private to that module).
    """
    pks = sorted({p.pk for p in patients})
    rows = Patient.all_objects.select_for_update(no_key=True).filter(pk__in=pks).order_by("pk")
    locked = {p.pk: p for p in rows}
    if len(locked) != len(pks):
        raise MergeError("One of the records no longer exists.")
    return [locked[p.pk] for p in patients]


def _bump(patient: Patient, actor, reason: str) -> None:
    patient.version += 1
    patient.updated_by = actor
    stamp(patient, actor, reason).save()


def _replaced_by(patient: Patient) -> Patient | None:
    link = Link.all_objects.filter(patient=patient, type=LinkType.REPLACED_BY).select_related("other").first()
    return link.other if link else None


def live_record(patient: Patient) -> Patient:
    """Follow ``replaced-by`` links to the record that stands for this person now."""
    seen = {patient.pk}
    while (nxt := _replaced_by(patient)) is not None and nxt.pk not in seen:
        seen.add(nxt.pk)
        patient = nxt
    return patient


def _require_usable(patient: Patient, role: str) -> None:
    """Not soft-deleted and not merged away (re-checked under the lock)."""
    if patient.deleted_at is not None:
        raise MergeError(f"The {role} record {patient.uuid} is deleted; restore it first.", field=role)
    if _replaced_by(patient) is not None:
        live = live_record(patient)
        if role == "duplicate":
            raise MergeError(f"The record {patient.uuid} was already merged into {live.uuid}.", field=role)
        raise MergeError(
            f"The {role} record {patient.uuid} was merged into {live.uuid}; use that record instead.",
            field=role,
        )


def _check_version(patient: Patient, expected: int | None, field: str) -> None:
    if expected is not None and patient.version != expected:
        exc = VersionConflict(expected=expected, current=patient.version)
        exc.field = field
        raise exc


def _snapshot(*patients: Patient) -> dict[int, dict]:
    data = load_patient_data([p.pk for p in patients], include_deleted=True)
    return {pk: survivorship.data_json(d) for pk, d in data.items()}


@retry_on_conflict
def merge_patients(
    *,
    survivor: Patient,
    duplicate: Patient,
    actor,
    reason: str,
    choices: MergeChoices | None = None,
    survivor_version: int | None = None,
    duplicate_version: int | None = None,
    preview: bool = False,
) -> Merge:
    """Merge ``duplicate`` into ``survivor``; return the Merge record (docs/merge.md).

    ``*_version`` are the versions the caller saw (VersionConflict if either moved).
    ``preview`` does the whole merge, rolls it back and returns the unsaved Merge: what
    would happen, exactly (ids of rows it would create are left out, as None).
    """
    choices = choices or MergeChoices()
    reason = _require_reason(reason)
    if survivor.pk == duplicate.pk:
        raise MergeError("A record cannot be merged into itself.")
    with transaction.atomic():
        merge = _merge(survivor, duplicate, actor, reason, choices, survivor_version, duplicate_version)
        if preview:
            transaction.set_rollback(True)
    if preview:
        merge.pk = merge.id = None
        merge._state.adding = True
        merge.survivor = Patient.all_objects.get(pk=merge.survivor_id)
        merge.duplicate = Patient.all_objects.get(pk=merge.duplicate_id)
        for entry in merge.changes["copied"]:
            entry["id"] = None
        for key in ("links_created", "candidates_opened"):
            merge.changes[key] = [None] * len(merge.changes[key])
    return merge


def _merge(survivor, duplicate, actor, reason, choices, survivor_version, duplicate_version) -> Merge:
    survivor, duplicate = _lock(survivor, duplicate)
    # Re-checked under the locks: a concurrent merge may have got there first.
    _require_usable(duplicate, "duplicate")
    _require_usable(survivor, "survivor")
    _check_version(survivor, survivor_version, "survivor_version")
    _check_version(duplicate, duplicate_version, "duplicate_version")
    snapshot = _snapshot(survivor, duplicate)
    merge = Merge(
        survivor=survivor,
        duplicate=duplicate,
        actor=actor,
        reason=reason,
        survivor_version_before=survivor.version,
        duplicate_version_before=duplicate.version,
        snapshot={"survivor": snapshot[survivor.pk], "duplicate": snapshot[duplicate.pk]},
    )
    today = timezone.localdate()
    changes: dict = {"choices": _choices_json(choices), "copied": [], "altered": []}
    changes["identifiers_moved"] = survivorship.move_identifiers(
        survivor=survivor, duplicate=duplicate, actor=actor, reason=reason
    )
    for kind, mode in (
        ("name", choices.names),
        ("address", choices.addresses),
        ("contact", choices.contacts),
    ):
        copied, altered = survivorship.merge_rows(
            kind, survivor=survivor, duplicate=duplicate, mode=mode, actor=actor, reason=reason, today=today
        )
        changes["copied"] += copied
        changes["altered"] += altered
    changes["scalars"] = survivorship.take_scalars(
        survivor=survivor, duplicate=duplicate, fields=choices.take_from_duplicate
    )
    death = survivor.deceased_at and timezone.localtime(survivor.deceased_at).date()
    if death and survivor.birth_date and death < survivor.birth_date:
        raise MergeError(
            "These choices put the date of death before the birth date: "
            "take the birth date and the death from the same record.",
            field="take_from_duplicate",
        )
    links = [
        Link(patient=duplicate, other=survivor, type=LinkType.REPLACED_BY, reason=reason, created_by=actor),
        Link(patient=survivor, other=duplicate, type=LinkType.REPLACES, reason=reason, created_by=actor),
    ]
    for link in links:
        stamp(link, actor, reason).save()
    changes["links_created"] = [link.pk for link in links]
    changes["duplicate_active"] = duplicate.active
    duplicate.active = False
    _bump(survivor, actor, reason)
    _bump(duplicate, actor, reason)
    # The index follows inside this transaction: the survivor gains the duplicate's
    # identifiers and names, the duplicate's row is flagged merged (search/indexing.py).
    patient_changed.send(sender=Patient, patient=survivor, action="merged", actor=actor)
    patient_changed.send(sender=Patient, patient=duplicate, action="merged", actor=actor)
    candidates = merge_queue.settle_for_merge(survivor, duplicate, actor, reason)
    closed, opened = merge_queue.rematch(survivor, actor)
    changes["candidates"] = candidates + closed
    changes["candidates_opened"] = opened
    merge.changes = changes
    merge.survivor_version_after = survivor.version
    merge.duplicate_version_after = duplicate.version
    try:
        with transaction.atomic():
            stamp(merge, actor, reason).save()
    except IntegrityError as exc:  # the partial unique index: a second standing merge
        raise MergeError(f"The record {duplicate.uuid} was already merged.") from exc
    return merge


def _choices_json(choices: MergeChoices) -> dict:
    return {
        "take_from_duplicate": sorted(choices.take_from_duplicate),
        "names": choices.names,
        "addresses": choices.addresses,
        "contacts": choices.contacts,
    }


@retry_on_conflict
@transaction.atomic
def unmerge_patients(*, merge: Merge, actor, reason: str) -> Merge:
    """Undo a merge: both patients' business data as before, the duplicate live again.

    Refused (MergeError listing every conflict, nothing changed) when anything the merge
    left on the survivor was changed since, the duplicate was changed, or the survivor
    was merged away itself (undo that merge first).
    """
    reason = _require_reason(reason)
    stored = Merge.objects.filter(pk=merge.pk).first()
    if stored is None:
        raise MergeError("No such merge.")
    survivor, duplicate = _lock(stored.survivor, stored.duplicate)
    # Locked after the patients, like every merge writer: one order, no deadlock.
    merge = Merge.objects.select_for_update().get(pk=merge.pk)
    merge_queue.lock_candidates(survivor, duplicate)
    if merge.status != MergeStatus.MERGED:
        raise MergeError(f"This merge was already undone on {merge.unmerged_at:%Y-%m-%d %H:%M}.")
    conflicts = _unmerge_conflicts(merge, survivor, duplicate)
    if conflicts:
        raise MergeError(
            "The merge cannot be undone: " + " ".join(conflicts) + " Nothing was changed.",
            conflicts=tuple(conflicts),
        )
    changes = merge.changes
    survivorship.undo_rows(changes, survivor=survivor, duplicate=duplicate, actor=actor, reason=reason)
    for link in Link.all_objects.filter(pk__in=changes["links_created"]).order_by("pk"):
        stamp(link, actor, reason).delete()
    duplicate.active = changes["duplicate_active"]
    _bump(survivor, actor, reason)
    _bump(duplicate, actor, reason)
    _check_restored(merge, survivor, duplicate)
    patient_changed.send(sender=Patient, patient=survivor, action="unmerged", actor=actor)
    patient_changed.send(sender=Patient, patient=duplicate, action="unmerged", actor=actor)
    merge_queue.restore_after_unmerge(changes.get("candidates", []), actor, reason)
    for patient in (duplicate, survivor):
        merge_queue.rematch(patient, actor)
    merge.status = MergeStatus.UNMERGED
    merge.unmerged_at = timezone.now()
    merge.unmerged_by = actor
    merge.unmerge_reason = reason
    stamp(merge, actor, reason).save()
    return merge


def _unmerge_conflicts(merge: Merge, survivor: Patient, duplicate: Patient) -> list[str]:
    conflicts = []
    if survivor.deleted_at is not None:
        conflicts.append(f"The surviving record {survivor.uuid} was deleted since; restore it first.")
    if (later := _replaced_by(survivor)) is not None:
        conflicts.append(
            f"The surviving record {survivor.uuid} was merged into {later.uuid} since: undo that merge first."
        )
    if duplicate.deleted_at is not None:
        conflicts.append(f"The merged-away record {duplicate.uuid} was deleted since.")
    elif duplicate.version != merge.duplicate_version_after:
        conflicts.append(
            f"The merged-away record {duplicate.uuid} was changed since the merge "
            f"(version {merge.duplicate_version_after}, now {duplicate.version})."
        )
    found = Link.all_objects.filter(pk__in=merge.changes["links_created"]).count()
    if found != len(merge.changes["links_created"]):
        conflicts.append("The merge's replaced-by / replaces links were removed.")
    return conflicts + survivorship.row_conflicts(merge.changes, survivor=survivor)


def _check_restored(merge: Merge, survivor: Patient, duplicate: Patient) -> None:
    """Compare with the snapshot: a last guard, so a bug can only refuse, never corrupt."""
    now = _snapshot(survivor, duplicate)
    wrong = now[duplicate.pk] != merge.snapshot["duplicate"]
    # Only when nobody touched the survivor since the merge must it equal its snapshot.
    if survivor.version == merge.survivor_version_after + 1:
        wrong |= now[survivor.pk] != merge.snapshot["survivor"]
    if wrong:
        raise MergeError(
            "The unmerge would not restore the records exactly as they were before the merge; "
            "nothing was changed. Please report this."
        )


@retry_on_conflict
@transaction.atomic
def link_patients(*, patient: Patient, other: Patient, actor, reason: str) -> None:
    """Same person, both records kept: ``seealso`` both ways; the pair's candidate -> linked."""
    reason = _require_reason(reason)
    if patient.pk == other.pk:
        raise MergeError("A record cannot be linked to itself.")
    patient, other = _lock(patient, other)
    _require_usable(patient, "first")
    _require_usable(other, "second")
    created = False
    for a, b in ((patient, other), (other, patient)):
        if not Link.all_objects.filter(patient=a, other=b, type=LinkType.SEEALSO).exists():
            stamp(
                Link(patient=a, other=b, type=LinkType.SEEALSO, reason=reason, created_by=actor),
                actor,
                reason,
            ).save()
            created = True
    if not created:
        raise MergeError("These records are already linked.")
    _touch(patient, other, actor, reason)
    merge_queue.mark_linked(patient, other, actor, reason)


@retry_on_conflict
@transaction.atomic
def unlink_patients(*, patient: Patient, other: Patient, actor, reason: str) -> None:
    """Remove the ``seealso`` links both ways; a linked candidate goes back to the queue."""
    reason = _require_reason(reason)
    if patient.pk == other.pk:
        raise MergeError("A record cannot be linked to itself.")
    patient, other = _lock(patient, other)
    for p, role in ((patient, "first"), (other, "second")):
        if p.deleted_at is not None:
            raise MergeError(f"The {role} record {p.uuid} is deleted; restore it first.")
    links = Link.all_objects.filter(
        patient__in=[patient, other], other__in=[patient, other], type=LinkType.SEEALSO
    ).order_by("pk")
    if not links:
        raise MergeError("These records are not linked.")
    for link in links:
        stamp(link, actor, reason).delete()
    _touch(patient, other, actor, reason)
    merge_queue.reopen_unlinked(patient, other, actor, reason)


def _touch(patient: Patient, other: Patient, actor, reason: str) -> None:
    # A link is a child row: both versions move, and the index hears of it.
    for p in (patient, other):
        _bump(p, actor, reason)
        patient_changed.send(sender=Patient, patient=p, action="linked", actor=actor)
