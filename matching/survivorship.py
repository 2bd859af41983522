"""Row-level work of a merge and its undo: what moves, what is copied, what is marked old.

``matching.merging`` owns the transaction, the locks and the preconditions; this module
writes (and un-writes) the child rows and scalar columns, and records every change in
the merge's ``changes`` JSON with the values before and after, so that the unmerge can
check nothing it would undo was changed since, and then undo exactly that.

Survivorship rules (docs/merge.md): the duplicate's identifiers move to the survivor;
its names, addresses and contacts stay on it (it stays readable) and are copied onto
the survivor — current or marked old, as the steward chose — skipping rows whose
content the survivor already has. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any
from uuid import UUID

from django.db import models

from patients.data import PatientData
from patients.models import Address, Contact, Identifier, Name, Patient
from patients.queries import ADDRESS_FIELDS, CONTACT_FIELDS, IDENTIFIER_FIELDS, NAME_FIELDS

MODELS: dict[str, type[models.Model]] = {
    "name": Name,
    "address": Address,
    "contact": Contact,
    "identifier": Identifier,
}
# The columns a merge may write, per row kind.
ROW_FIELDS: dict[str, tuple[str, ...]] = {
    "name": (*NAME_FIELDS, "primary"),
    "address": (*ADDRESS_FIELDS, "primary"),
    "contact": CONTACT_FIELDS,
    "identifier": ("system", "value", *IDENTIFIER_FIELDS, "live"),
}
# What makes two rows "the same" for the skip-duplicates rule: the content, not the
# use, period or primary flag.
CONTENT_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("family", "given", "prefix", "suffix", "text"),
    "address": ("line", "city", "district", "state", "postal_code", "country", "text"),
    "contact": ("system", "normalized_value"),
}
# Survivorship choice -> the patient columns it copies from the duplicate.
SCALAR_COLUMNS: dict[str, tuple[str, ...]] = {
    "gender": ("gender",),
    "birth_date": ("birth_date",),
    "deceased": ("deceased", "deceased_at"),
    "marital_status": ("marital_status",),
    "multiple_birth": ("multiple_birth", "multiple_birth_order"),
    "managing_organization": ("managing_organization_id",),
}
OLD = "old"


def jsonable(value: Any) -> Any:
    """Dates, datetimes and UUIDs as ISO strings, tuples as lists: a JSON-able copy."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def data_json(data: PatientData) -> dict[str, Any]:
    return jsonable(asdict(data))


def _from_json(model: type[models.Model], field: str, value: Any) -> Any:
    return model._meta.get_field(field).to_python(value)


def stamp(obj, actor, reason: str):
    """Tell django-simple-history who made this change and why."""
    obj._history_user = actor
    obj._change_reason = reason
    return obj


def _values(kind: str, row) -> dict[str, Any]:
    return {f: jsonable(getattr(row, f)) for f in ROW_FIELDS[kind]}


def _content(kind: str, values: dict[str, Any]) -> tuple:
    return tuple(repr(values[f]) for f in CONTENT_FIELDS[kind])


def _as_old(kind: str, values: dict[str, Any], today: date) -> dict[str, Any]:
    """Names: use old. Addresses and contacts: use old and the period ended today."""
    values = {**values, "use": OLD}
    if "primary" in values:
        values["primary"] = False
    if kind != "name" and values["period_end"] is None:
        # Never end a period before it starts (a future-dated address ends when it starts).
        values["period_end"] = max(today.isoformat(), values["period_start"] or "")
    return values


def _apply(model, row, values: dict[str, Any]) -> None:
    for field, value in values.items():
        setattr(row, field, _from_json(model, field, value))


def merge_rows(
    kind: str, *, survivor: Patient, duplicate: Patient, mode: str, actor, reason: str, today: date
) -> tuple[list[dict], list[dict]]:
    """Bring the duplicate's rows of ``kind`` onto the survivor as ``mode`` says.

    survivor: the copies are old. both: the copies are current, not primary.
    duplicate: the copies are current, the first is primary, the survivor's own rows
    (except those equal to one of the duplicate's) become old.
    Returns (copied, altered) entries for ``Merge.changes``.
    """
    model = MODELS[kind]
    has_primary = "primary" in ROW_FIELDS[kind]
    order = ("-primary", "id") if has_primary else ("id",)
    mine = list(model.all_objects.filter(patient=survivor).order_by(*order))
    theirs = list(model.all_objects.filter(patient=duplicate).order_by(*order))

    before = {row.pk: _values(kind, row) for row in mine}
    after = {pk: dict(values) for pk, values in before.items()}
    have = {}
    for row in mine:
        have.setdefault(_content(kind, before[row.pk]), row.pk)
    copies: list[dict] = []  # {"source": id, "values": {...}}
    kept: set[int] = set()  # survivor rows equal to one of the duplicate's
    first = None  # what becomes primary in "duplicate" mode: ("row", pk) or ("copy", index)
    for row in theirs:
        values = _values(kind, row)
        key = _content(kind, values)
        if key in have:
            if have[key] is not None:
                kept.add(have[key])
                first = first or ("row", have[key])
            continue
        have[key] = None  # two equal rows on the duplicate: copy one
        if has_primary:
            values["primary"] = False
        if mode == "survivor":
            values = _as_old(kind, values, today)
        copies.append({"source": row.pk, "values": values})
        first = first or ("copy", len(copies) - 1)

    if mode == "duplicate":
        for pk in after:
            if pk not in kept:
                after[pk] = _as_old(kind, after[pk], today)
        if has_primary and first is not None:
            for values in [*after.values(), *(c["values"] for c in copies)]:
                values["primary"] = False
            target = after[first[1]] if first[0] == "row" else copies[first[1]]["values"]
            target["primary"] = True
    if has_primary:
        # The registry keeps exactly one primary row whenever there are rows (a later
        # update would otherwise pick one itself, and so touch a row the merge wrote).
        everything = [*after.values(), *(c["values"] for c in copies)]
        if everything and not any(v["primary"] for v in everything):
            everything[0]["primary"] = True

    altered = []
    for row in mine:
        changed = [f for f in ROW_FIELDS[kind] if before[row.pk][f] != after[row.pk][f]]
        if changed:
            altered.append(
                {
                    "model": kind,
                    "id": row.pk,
                    "label": str(row),
                    "old": {f: before[row.pk][f] for f in changed},
                    "new": {f: after[row.pk][f] for f in changed},
                }
            )
    # Write order keeps the one-primary index satisfied at every statement: rows that
    # lose (or keep no) primary first, then the copies, then the row that gains it.
    rows = {row.pk: row for row in mine}
    gaining = [a for a in altered if a["new"].get("primary") is True]
    for entry in [a for a in altered if a not in gaining]:
        _apply(model, rows[entry["id"]], entry["new"])
        stamp(rows[entry["id"]], actor, reason).save()
    copied = []
    for copy in copies:
        row = model(patient=survivor)
        _apply(model, row, copy["values"])
        stamp(row, actor, reason).save()
        copied.append(
            {
                "model": kind,
                "id": row.pk,
                "label": str(row),
                "source": copy["source"],
                "values": copy["values"],
            }
        )
    for entry in gaining:
        _apply(model, rows[entry["id"]], entry["new"])
        stamp(rows[entry["id"]], actor, reason).save()
    return copied, altered


def move_identifiers(*, survivor: Patient, duplicate: Patient, actor, reason: str) -> list[dict]:
    """Re-parent the duplicate's identifier rows, so every lookup by them finds the survivor."""
    moved = []
    for row in Identifier.all_objects.filter(patient=duplicate).order_by("id"):
        row.patient = survivor
        stamp(row, actor, reason).save()
        moved.append({"id": row.pk, "values": _values("identifier", row)})
    return moved


def take_scalars(*, survivor: Patient, duplicate: Patient, fields: frozenset[str]) -> dict[str, dict]:
    """Copy the chosen columns onto the (locked, unsaved) survivor; return old/new values."""
    changed = {}
    for choice in sorted(fields):
        for column in SCALAR_COLUMNS[choice]:
            old, new = getattr(survivor, column), getattr(duplicate, column)
            if old != new:
                setattr(survivor, column, new)
                changed[column] = {"old": jsonable(old), "new": jsonable(new)}
    return changed


def row_conflicts(changes: dict, *, survivor: Patient) -> list[str]:
    """Rows and columns of the survivor that no longer hold what the merge left there."""
    conflicts = []
    for entry in changes.get("identifiers_moved", []):
        row = Identifier.all_objects.filter(pk=entry["id"]).first()
        label = f"identifier {entry['values']['system']}|{entry['values']['value']}"
        if row is None or row.patient_id != survivor.pk:
            conflicts.append(f"The {label} is no longer on the surviving record.")
        elif _values("identifier", row) != entry["values"]:
            conflicts.append(f"The {label} was changed since the merge.")
    for entry in changes.get("copied", []):
        row = MODELS[entry["model"]].all_objects.filter(pk=entry["id"]).first()
        what = f"The {entry['model']} '{entry['label']}' the merge copied onto the surviving record"
        if row is None or row.patient_id != survivor.pk:
            conflicts.append(f"{what} was removed since.")
        elif _values(entry["model"], row) != entry["values"]:
            conflicts.append(f"{what} was changed since.")
    for entry in changes.get("altered", []):
        row = MODELS[entry["model"]].all_objects.filter(pk=entry["id"]).first()
        what = f"The {entry['model']} '{entry['label']}' the merge marked on the surviving record"
        if row is None or row.patient_id != survivor.pk:
            conflicts.append(f"{what} was removed since.")
        elif {f: jsonable(getattr(row, f)) for f in entry["new"]} != entry["new"]:
            conflicts.append(f"{what} was changed since.")
    for column, values in changes.get("scalars", {}).items():
        if jsonable(getattr(survivor, column)) != values["new"]:
            field = column.removesuffix("_id").replace("_", " ")
            conflicts.append(f"The surviving record's {field} was changed since the merge.")
    return conflicts


def undo_rows(changes: dict, *, survivor: Patient, duplicate: Patient, actor, reason: str) -> None:
    """Undo what ``merge_rows``, ``move_identifiers`` and ``take_scalars`` did.

    Call only after ``row_conflicts`` found nothing. The survivor is saved by the caller.
    """
    for entry in changes.get("copied", []):
        row = MODELS[entry["model"]].all_objects.get(pk=entry["id"])
        stamp(row, actor, reason).delete()
    altered = changes.get("altered", [])
    regaining = [a for a in altered if a["old"].get("primary") is True]
    for entry in [a for a in altered if a not in regaining] + regaining:
        model = MODELS[entry["model"]]
        row = model.all_objects.get(pk=entry["id"])
        _apply(model, row, entry["old"])
        stamp(row, actor, reason).save()
    for entry in changes.get("identifiers_moved", []):
        row = Identifier.all_objects.get(pk=entry["id"])
        row.patient = duplicate
        stamp(row, actor, reason).save()
    for column, values in changes.get("scalars", {}).items():
        setattr(survivor, column, _from_json(Patient, column, values["old"]))
