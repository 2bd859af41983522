"""A patient's versions: who, when, why, and what changed, from django-simple-history.

Every write adds one HistoricalPatient row (the version bump) plus rows for the child
rows it touched, in the same transaction. The child rows are attributed to a version by
the order the services write in: an update, delete or restore writes its child rows
*before* the patient row; a registration writes the patient row first and its children
right after, all with the registration's user and reason. A fixed number of queries,
however long the history.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime
from typing import Any

from patients.models import Address, Contact, Identifier, Link, Name, Organization, Patient

_SCALARS = (
    "active", "gender", "birth_date", "deceased", "deceased_at", "marital_status", "multiple_birth",
    "multiple_birth_order", "managing_organization", "deleted_at",
)  # fmt: skip
_CHILDREN = {
    "names": (
        Name,
        ("use", "family", "given", "prefix", "suffix", "text", "period_start", "period_end", "primary"),
    ),
    "identifiers": (Identifier, ("system", "value", "use", "type", "assigner", "period_start", "period_end")),
    "addresses": (
        Address,
        ("use", "type", "line", "city", "district", "state", "postal_code", "country", "text",
         "period_start", "period_end", "primary"),
    ),
    "contacts": (Contact, ("system", "value", "use", "rank", "period_start", "period_end")),
    "links": (Link, ("other", "type", "reason")),
}  # fmt: skip
_OPS = {"+": "add", "-": "remove", "~": "change"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _action(row, previous) -> str:
    if row.history_type == "+":
        return "created"
    if row.history_type == "-":
        return "purged"
    if previous is not None and previous.deleted_at is None and row.deleted_at is not None:
        return "deleted"
    if previous is not None and previous.deleted_at is not None and row.deleted_at is None:
        return "restored"
    return "updated"


def patient_versions(patient: Patient) -> list[dict]:
    """All versions of ``patient``, newest first."""
    rows = list(patient.history.select_related("history_user").order_by("history_date", "history_id"))
    child_rows = []  # (kind, historical row)
    for kind, (model, _) in _CHILDREN.items():
        child_rows += [(kind, r) for r in model.history.filter(patient_id=patient.pk).order_by("history_id")]
    child_rows.sort(key=lambda item: item[1].history_date)

    # Public ids for the foreign keys that history stores as integers.
    org_ids = {r.managing_organization_id for r in rows} - {None}
    other_ids = {r.other_id for kind, r in child_rows if kind == "links"}
    orgs = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "uuid")) if org_ids else {}
    others = dict(Patient.all_objects.filter(pk__in=other_ids).values_list("pk", "uuid")) if other_ids else {}

    def scalar(row, field):
        if field == "managing_organization":
            return str(orgs[row.managing_organization_id]) if row.managing_organization_id else None
        return _plain(getattr(row, field))

    def child(kind, row) -> dict:
        values = {}
        for field in _CHILDREN[kind][1]:
            value = str(others.get(row.other_id, "")) if field == "other" else getattr(row, field)
            values[field] = _plain(value)
        return values

    # Attribute each child row to the index of its patient row (see the module docstring).
    dates = [r.history_date for r in rows]
    changes: list[list[dict]] = [[] for _ in rows]
    last_seen: dict[tuple[str, int], dict] = {}
    registration_open: dict[int, bool] = {}
    for kind, c in child_rows:
        after = bisect_left(dates, c.history_date)  # the first patient row written after c
        before = after - 1
        index = min(after, len(rows) - 1)
        if before >= 0 and rows[before].history_type == "+" and registration_open.get(before, True):
            reg = rows[before]
            # The registration's children follow it directly, with its user and reason.
            registration_open[before] = (
                c.history_type == "+"
                and c.history_user_id == reg.history_user_id
                and c.history_change_reason == reg.history_change_reason
            )
            if registration_open[before]:
                index = before
        if index < 0:
            continue  # no patient history row at all: nothing to attach it to
        value = child(kind, c)
        previous_value = last_seen.get((kind, c.id))
        last_seen[(kind, c.id)] = value
        op = _OPS[c.history_type]
        if op == "change" and previous_value == value:
            continue  # only an internal flag changed (an identifier's live flag)
        changes[index].append(
            {
                "field": kind,
                "op": op,
                "old": None if op == "add" else value if op == "remove" else previous_value,
                "new": None if op == "remove" else value,
            }
        )

    versions = []
    for i, row in enumerate(rows):
        previous = rows[i - 1] if i else None
        scalar_changes = []
        for field in _SCALARS:
            new = scalar(row, field)
            old = scalar(previous, field) if previous else None
            if (previous is None and new not in (None, "")) or (previous is not None and old != new):
                scalar_changes.append({"field": field, "op": "set", "old": old, "new": new})
        versions.append(
            {
                "version": row.version,
                "at": row.history_date,
                "by": row.history_user.get_username() if row.history_user else None,
                "reason": row.history_change_reason or "",
                "action": _action(row, previous),
                "changes": scalar_changes + changes[i],
            }
        )
    versions.reverse()
    return versions
