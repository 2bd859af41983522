"""A patient's history as one timeline: who changed what, when and why.

Reads the history rows of the patient, its names, identifiers, addresses, contacts and
links, the match candidates it is part of, and its merges. Rows written by one write
(same person, same reason, within a moment) become one event with several changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q

from matching.models import MatchCandidate, Merge
from patients.models import Address, Contact, Identifier, Link, Name, Patient

LIMIT = 300
# Rows of one write share the actor and reason and are stamped within this span.
SAME_WRITE = timedelta(seconds=2)
VERBS = {"+": "added", "~": "changed", "-": "removed"}
# Patient columns that every write touches: the version line says it instead.
QUIET_FIELDS = ["version", "updated_by", "updated_at", "created_at", "created_by"]


@dataclass
class Change:
    text: str
    other_id: int | None = None  # another patient the change names (shown as a link)
    other: Patient | None = None


@dataclass
class Event:
    when: datetime
    who: object | None
    why: str
    changes: list[Change] = field(default_factory=list)

    def joins(self, when: datetime, who, why: str) -> bool:
        return (
            getattr(who, "pk", None) == getattr(self.who, "pk", None)
            and why == self.why
            and abs(self.when - when) <= SAME_WRITE
        )


def _shown(value) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _patient_changes(patient: Patient) -> list[tuple]:
    records = list(
        Patient.history.filter(id=patient.pk)
        .select_related("history_user")
        .order_by("history_date", "history_id")
    )
    out = []
    previous = None
    for record in records[-LIMIT:]:
        if record.history_type == "+":
            text = Change("Record registered (version 1).")
        elif record.history_type == "-":
            text = Change("Record purged.")
        else:
            delta = record.diff_against(previous, excluded_fields=QUIET_FIELDS) if previous else None
            parts = (
                [f"{c.field.replace('_', ' ')} {_shown(c.old)} → {_shown(c.new)}" for c in delta.changes]
                if delta
                else []
            )
            version = f"version {record.version}"
            text = Change(
                f"Record: {'; '.join(parts)} ({version})." if parts else f"Record now at {version}."
            )
        out.append((record.history_date, record.history_user, record.history_change_reason or "", text))
        previous = record
    return out


def _child_changes(patient: Patient) -> list[tuple]:
    out = []
    for model in (Name, Identifier, Address, Contact, Link):
        rows = model.history.filter(patient_id=patient.pk).select_related("history_user")
        for record in rows.order_by("-history_date", "-history_id")[:LIMIT]:
            kind = model._meta.verbose_name
            if model is Link:
                # Not str(record.instance): that reads the other patient, maybe purged since.
                text = Change(f"Link {VERBS[record.history_type]}: {record.type}", record.other_id)
            else:
                text = Change(f"{kind.capitalize()} {VERBS[record.history_type]}: {record.instance}")
            out.append((record.history_date, record.history_user, record.history_change_reason or "", text))
    return out


def _candidate_changes(patient: Patient) -> list[tuple]:
    """Candidate openings and decisions (the matcher's re-scoring is left out)."""
    records = (
        MatchCandidate.history.filter(Q(patient_a_id=patient.pk) | Q(patient_b_id=patient.pk))
        .select_related("history_user")
        .order_by("id", "history_date", "history_id")
    )
    out = []
    last_status: dict[int, str] = {}
    for record in records[: LIMIT * 4]:
        before = last_status.get(record.id)
        last_status[record.id] = record.status
        if before == record.status:
            continue
        other = record.patient_b_id if record.patient_a_id == patient.pk else record.patient_a_id
        if before is None:
            text = Change(f"Possible duplicate found ({record.grade}, {record.probability:.0%}):", other)
        else:
            text = Change(f"Candidate pair {before} → {record.status}, with", other)
        out.append((record.history_date, record.history_user, record.history_change_reason or "", text))
    return out


def _merge_changes(patient: Patient) -> list[tuple]:
    out = []
    merges = Merge.objects.filter(Q(survivor=patient) | Q(duplicate=patient)).select_related(
        "actor", "unmerged_by"
    )
    for merge in merges[:LIMIT]:
        if merge.duplicate_id == patient.pk:
            done, undone = "Merged into", "Merge into another record undone:"
            other = merge.survivor_id
        else:
            done, undone = "Merged into this record:", "Merge into this record undone:"
            other = merge.duplicate_id
        out.append((merge.created_at, merge.actor, merge.reason, Change(done, other)))
        if merge.unmerged_at:
            out.append((merge.unmerged_at, merge.unmerged_by, merge.unmerge_reason, Change(undone, other)))
    return out


def patient_timeline(patient: Patient, *, limit: int = LIMIT) -> list[Event]:
    """The patient's events, newest first."""
    entries = [
        *_patient_changes(patient),
        *_child_changes(patient),
        *_candidate_changes(patient),
        *_merge_changes(patient),
    ]
    entries.sort(key=lambda e: e[0])
    events: list[Event] = []
    for when, who, why, text in entries:
        if events and events[-1].joins(when, who, why):
            events[-1].changes.append(text)
        else:
            events.append(Event(when=when, who=who, why=why, changes=[text]))
    events = list(reversed(events))[:limit]
    others = {c.other_id for e in events for c in e.changes if c.other_id}
    if others:
        found = Patient.all_objects.prefetch_related("names").in_bulk(others)
        for event in events:
            for change in event.changes:
                change.other = found.get(change.other_id)
    return events
