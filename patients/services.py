"""Patient write services: the only code that writes patient rows.

Every interface (admin, REST, FHIR, importer, commands) calls these. One transaction
per write: normalise -> lock -> write rows -> bump version -> history -> signal.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, Q, RestrictedError
from django.utils import timezone

from patients.codes import LinkType
from patients.data import (
    IdentifierData,
    LinkData,
    PatientData,
    clean_patient_data,
    in_stored_order,
)
from patients.errors import IdentifierConflict, PatientStateError, VersionConflict
from patients.inserts import InsertWithHistory, create_with_history
from patients.models import Address, Contact, Identifier, Link, Name, Organization, Patient
from patients.queries import ADDRESS_FIELDS, CONTACT_FIELDS, IDENTIFIER_FIELDS, NAME_FIELDS, load_patient_data
from patients.retry import retry_on_conflict
from patients.signals import patient_changed, patient_purged

# Child rows compared field by field to decide what an update keeps, changes or removes.
_NAME_FIELDS = NAME_FIELDS
_ADDRESS_FIELDS = ADDRESS_FIELDS
_CONTACT_FIELDS = CONTACT_FIELDS
_IDENTIFIER_FIELDS = IDENTIFIER_FIELDS


def _stamp(obj, actor, reason: str):
    """Tell django-simple-history who made this change and why."""
    obj._history_user = actor
    obj._change_reason = reason
    return obj


def _row_values(item, fields: tuple[str, ...]) -> dict[str, Any]:
    values = asdict(item) if not hasattr(item, "_meta") else {f: getattr(item, f) for f in fields}
    return {f: list(values[f]) if isinstance(values[f], tuple) else values[f] for f in fields}


def _resolve_organization(data: PatientData) -> Organization | None:
    from django.core.exceptions import ValidationError

    if data.managing_organization is None:
        return None
    org = Organization.objects.filter(uuid=data.managing_organization).first()
    if org is None:
        raise ValidationError({"managing_organization": "Unknown organization."})
    return org


def _check_identifiers_free(identifiers: tuple[IdentifierData, ...], *, owner: Patient | None) -> None:
    """Raise IdentifierConflict for the first identifier another live patient holds.

    A friendly early answer only: the partial unique index is what guarantees it,
    see ``_execute_claiming`` for the race.
    """
    if not identifiers:
        return
    wanted = Q()
    for ident in identifiers:
        wanted |= Q(system=ident.system, value=ident.value)
    holders = Identifier.all_objects.filter(wanted, live=True).select_related("patient")
    if owner is not None:
        holders = holders.exclude(patient=owner)
    held = {(h.system, h.value): h.patient for h in holders}
    for i, ident in enumerate(identifiers):
        if (ident.system, ident.value) in held:
            raise IdentifierConflict(
                system=ident.system,
                value=ident.value,
                existing=held[(ident.system, ident.value)],
                field=f"identifiers[{i}]",
            )


def _identifier_rows(items, **patient) -> list[Identifier]:
    return [
        Identifier(**patient, system=i.system, value=i.value, **_row_values(i, _IDENTIFIER_FIELDS))
        for i in items
    ]


def _execute_claiming(statement: InsertWithHistory, identifiers, *, owner: Patient | None) -> None:
    """Run ``statement``, which inserts these identifiers for ``owner`` (None: a new patient).

    A concurrent writer can insert the same (system, value) between our check and this
    insert; the unique index makes us wait for it and then fail. The savepoint keeps the
    transaction usable to name the winner.
    """
    if not identifiers:
        statement.execute()
        return
    try:
        with transaction.atomic():
            statement.execute()
    except IntegrityError as exc:
        if "uniq_live_identifier" not in str(exc):
            raise
        _check_identifiers_free(tuple(identifiers), owner=owner)
        raise  # the conflicting row vanished again: let the caller see the real error


def _insert_identifiers(patient: Patient, items: list[IdentifierData], actor, reason: str) -> None:
    statement = InsertWithHistory(user=actor, reason=reason)
    statement.add(_identifier_rows(items, patient=patient))
    _execute_claiming(statement, items, owner=patient)


def _insert_new_patient(patient: Patient, data: PatientData, actor, reason: str) -> None:
    """The new patient, its child rows and all their history rows in one statement
    (patients/inserts.py), where ``save()`` and ``bulk_create_with_history`` took ten."""
    statement = InsertWithHistory(user=actor, reason=reason)
    statement.add([patient])
    names = [Name(primary=n.primary, **_row_values(n, _NAME_FIELDS)) for n in data.names]
    addresses = [Address(primary=a.primary, **_row_values(a, _ADDRESS_FIELDS)) for a in data.addresses]
    contacts = [Contact(**_row_values(c, _CONTACT_FIELDS)) for c in data.contacts]
    for rows in (names, addresses, contacts, _identifier_rows(data.identifiers)):
        statement.add(rows, parent=patient)
    _execute_claiming(statement, data.identifiers, owner=None)


def _sync_rows(
    patient: Patient,
    existing: list,
    incoming: tuple,
    model,
    fields: tuple[str, ...],
    actor,
    reason: str,
) -> bool:
    """Make ``patient``'s rows of ``model`` equal ``incoming``, keeping unchanged rows.

    Rows are matched on content, so an unchanged name keeps its id and history. Returns
    whether anything changed.
    """
    has_primary = hasattr(model, "primary")
    remaining = list(existing)
    keep: list[tuple[Any, Any]] = []
    create = []
    for item in incoming:
        values = _row_values(item, fields)
        match = next((row for row in remaining if _row_values(row, fields) == values), None)
        if match is None:
            create.append(item)
        else:
            remaining.remove(match)
            keep.append((match, item))
    changed = bool(remaining or create)
    # Order matters for the one-primary index: drop rows, clear flags, then set them.
    for row in remaining:
        _stamp(row, actor, reason).delete()
    if has_primary:
        for want in (False, True):
            for row, item in keep:
                if row.primary != item.primary and item.primary == want:
                    row.primary = want
                    _stamp(row, actor, reason).save()
                    changed = True
    rows = [
        model(
            patient=patient, **({"primary": item.primary} if has_primary else {}), **_row_values(item, fields)
        )
        for item in create
    ]
    if rows:
        create_with_history(rows, user=actor, reason=reason)
    return changed


def _sync_identifiers(patient: Patient, incoming: tuple[IdentifierData, ...], actor, reason: str) -> bool:
    existing = {(i.system, i.value): i for i in Identifier.all_objects.filter(patient=patient)}
    changed = False
    wanted = {(i.system, i.value) for i in incoming}
    for key, row in existing.items():
        if key not in wanted:
            _stamp(row, actor, reason).delete()
            changed = True
    new = []
    for item in incoming:
        row = existing.get((item.system, item.value))
        if row is None:
            new.append(item)
            continue
        values = _row_values(item, _IDENTIFIER_FIELDS)
        if _row_values(row, _IDENTIFIER_FIELDS) != values:
            for f, v in values.items():
                setattr(row, f, v)
            _stamp(row, actor, reason).save()
            changed = True
    _insert_identifiers(patient, new, actor, reason)
    return changed or bool(new)


def _lock(*patients: Patient) -> dict[int, Patient]:
    """Lock patient rows in primary-key order (a fixed order means no deadlocks).

    ``FOR NO KEY UPDATE``, the lock an UPDATE takes, not ``FOR UPDATE``: writers still
    queue on each other, but the foreign-key check of another transaction's new row that
    points at a held patient (a match candidate, a link) does not wait. Under ``FOR
    UPDATE`` two writers each holding a patient the other's new rows pointed at
    deadlocked at COMMIT, where the deferred checks run. Only a purge, which deletes the
    row, takes ``FOR UPDATE``.
    """
    pks = sorted({p.pk for p in patients})
    rows = Patient.all_objects.select_for_update(no_key=True).filter(pk__in=pks).order_by("pk")
    return {p.pk: p for p in rows}


def _resolve_link_targets(patient: Patient | None, links: tuple[LinkData, ...]) -> dict:
    from django.core.exceptions import ValidationError

    targets = {}
    linked_before = set()
    if patient is not None:
        linked_before = set(Link.all_objects.filter(patient=patient).values_list("other__uuid", flat=True))
    for i, link in enumerate(links):
        other = Patient.all_objects.filter(uuid=link.other).first()
        # A link made while the other patient was live survives its soft delete; a new
        # link must point at a live patient.
        if other is None or (other.deleted_at is not None and link.other not in linked_before):
            raise ValidationError({f"links[{i}].other": f"No live patient {link.other}."})
        if patient is not None and other.pk == patient.pk:
            raise ValidationError({f"links[{i}].other": "A patient cannot link to itself."})
        targets[link.other] = other
    return targets


def _refuse_if_merged_away(patient: Patient) -> None:
    """A merged-away record is kept for reference only: changes go to the live one."""
    link = Link.all_objects.filter(patient=patient, type=LinkType.REPLACED_BY).select_related("other").first()
    if link is not None:
        raise PatientStateError(f"The patient was merged into {link.other.uuid}: change that record instead.")


def _bump(patient: Patient, actor, reason: str) -> None:
    patient.version += 1
    patient.updated_by = actor
    _stamp(patient, actor, reason).save()


def _sync_links(
    patient: Patient, links: tuple[LinkData, ...], targets: dict, actor, reason: str, *, new: bool = False
) -> tuple[bool, set[Patient]]:
    """Write the refer/seealso links of ``patient``; seealso is kept symmetric.

    Returns whether this patient's links changed, and the other patients whose rows
    changed (their reverse seealso link). ``new``: the patient was created in this
    transaction, so it has no links to read yet.
    Merge links (replaces/replaced-by) belong to the merge service and are left alone.
    """
    existing = {}
    if not new:
        rows = Link.all_objects.filter(patient=patient, type__in=[LinkType.REFER, LinkType.SEEALSO])
        existing = {(link.other_id, link.type): link for link in rows}
    wanted = {(targets[link.other].pk, link.type): link for link in links}
    touched: set[Patient] = set()
    changed = False
    for key, row in existing.items():
        if key not in wanted:
            changed = True
            _stamp(row, actor, reason).delete()
            if row.type == LinkType.SEEALSO:
                reverse = Link.all_objects.filter(
                    patient_id=row.other_id, other=patient, type=LinkType.SEEALSO
                )
                for rev in reverse:
                    _stamp(rev, actor, reason).delete()
                touched.add(row.other)
    for (other_pk, link_type), link in wanted.items():
        if (other_pk, link_type) in existing:
            continue
        changed = True
        other = targets[link.other]
        _stamp(
            Link(patient=patient, other=other, type=link_type, reason=link.reason, created_by=actor),
            actor,
            reason,
        ).save()
        if (
            link_type == LinkType.SEEALSO
            and not Link.all_objects.filter(patient=other, other=patient, type=LinkType.SEEALSO).exists()
        ):
            _stamp(
                Link(patient=other, other=patient, type=link_type, reason=link.reason, created_by=actor),
                actor,
                reason,
            ).save()
            touched.add(other)
    return changed, touched


def _bump_others(others: set[Patient], actor, reason: str) -> None:
    for other in sorted(others, key=lambda p: p.pk):
        locked = Patient.all_objects.select_for_update(no_key=True).get(pk=other.pk)
        _bump(locked, actor, reason)
        patient_changed.send(sender=Patient, patient=locked, action="linked", actor=actor)


@retry_on_conflict
@transaction.atomic
def register_patient(*, data: PatientData, actor=None, reason: str = "") -> Patient:
    """Create a patient with its children. Raises ValidationError or IdentifierConflict."""
    data = clean_patient_data(data)
    organization = _resolve_organization(data)
    targets = _resolve_link_targets(None, data.links)
    _check_identifiers_free(data.identifiers, owner=None)
    patient = Patient(
        **{f: getattr(data, f) for f in PatientData.SCALAR_FIELDS},
        managing_organization=organization,
        created_by=actor,
        updated_by=actor,
    )
    _insert_new_patient(patient, data, actor, reason or "Registered")
    _, others = _sync_links(patient, data.links, targets, actor, reason or "Registered", new=True)
    patient_changed.send(
        sender=Patient, patient=patient, action="registered", actor=actor, data=in_stored_order(data)
    )
    _bump_others(others, actor, reason or "Linked from a new patient")
    return patient


@retry_on_conflict
@transaction.atomic
def update_patient(
    *, patient: Patient, data: PatientData, expected_version: int | None, actor=None, reason: str = ""
) -> Patient:
    """Replace the patient's data with ``data`` (a full update, like FHIR PUT).

    ``expected_version`` is the version the caller read; None updates unconditionally.
    Unchanged child rows are kept as they are; nothing changes when nothing differs.
    """
    data = clean_patient_data(data)
    patient = _lock(patient)[patient.pk]
    # Re-checked after locking: another writer may have got there first.
    if patient.deleted_at is not None:
        raise PatientStateError("The patient is deleted; restore it first.")
    _refuse_if_merged_away(patient)
    if expected_version is not None and patient.version != expected_version:
        raise VersionConflict(expected=expected_version, current=patient.version)
    organization = _resolve_organization(data)
    targets = _resolve_link_targets(patient, data.links)
    _check_identifiers_free(data.identifiers, owner=patient)
    reason = reason or "Updated"

    changed = False
    scalars = {f: getattr(data, f) for f in PatientData.SCALAR_FIELDS}
    scalars["managing_organization_id"] = organization.pk if organization else None
    for f, v in scalars.items():
        if getattr(patient, f) != v:
            setattr(patient, f, v)
            changed = True
    changed |= _sync_rows(
        patient, list(Name.all_objects.filter(patient=patient)), data.names, Name, _NAME_FIELDS, actor, reason
    )
    changed |= _sync_rows(
        patient,
        list(Address.all_objects.filter(patient=patient)),
        data.addresses,
        Address,
        _ADDRESS_FIELDS,
        actor,
        reason,
    )
    changed |= _sync_rows(
        patient,
        list(Contact.all_objects.filter(patient=patient)),
        data.contacts,
        Contact,
        _CONTACT_FIELDS,
        actor,
        reason,
    )
    changed |= _sync_identifiers(patient, data.identifiers, actor, reason)
    links_changed, others = _sync_links(patient, data.links, targets, actor, reason)
    changed |= links_changed
    if not changed:
        return patient
    _bump(patient, actor, reason)
    # Indexing and matching both need the patient as stored now: read once, sent along.
    stored = load_patient_data([patient.pk])[patient.pk]
    patient_changed.send(sender=Patient, patient=patient, action="updated", actor=actor, data=stored)
    _bump_others(others, actor, reason)
    return patient


@retry_on_conflict
@transaction.atomic
def delete_patient(
    *, patient: Patient, actor=None, reason: str = "", expected_version: int | None = None
) -> Patient:
    """Soft-delete: hide the patient and free its identifiers. Undone by restore."""
    patient = _lock(patient)[patient.pk]
    if patient.deleted_at is not None:
        raise PatientStateError("The patient is already deleted.")
    _refuse_if_merged_away(patient)
    # A survivor of merges: deleting it would leave the merged-away records pointing
    # at no live record of the person.
    merged_in = (
        Link.all_objects.filter(patient=patient, type=LinkType.REPLACES).select_related("other").first()
    )
    if merged_in is not None:
        raise PatientStateError(
            f"Patient {merged_in.other.uuid} was merged into this one: unmerge it before deleting."
        )
    if expected_version is not None and patient.version != expected_version:
        raise VersionConflict(expected=expected_version, current=patient.version)
    reason = reason or "Deleted"
    for ident in Identifier.all_objects.filter(patient=patient, live=True):
        ident.live = False
        _stamp(ident, actor, reason).save()
    patient.deleted_at = timezone.now()
    patient.deleted_by = actor
    _bump(patient, actor, reason)
    patient_changed.send(sender=Patient, patient=patient, action="deleted", actor=actor)
    return patient


@retry_on_conflict
@transaction.atomic
def restore_patient(*, patient: Patient, actor=None, reason: str = "") -> Patient:
    """Undo a soft delete, re-claiming the identifiers if nobody took them meanwhile."""
    patient = _lock(patient)[patient.pk]
    if patient.deleted_at is None:
        raise PatientStateError("The patient is not deleted.")
    reason = reason or "Restored"
    identifiers = list(Identifier.all_objects.filter(patient=patient, live=False))
    _check_identifiers_free(
        tuple(IdentifierData(system=i.system, value=i.value) for i in identifiers), owner=patient
    )
    try:
        # As in _execute_claiming: a concurrent writer may claim one after the check.
        with transaction.atomic():
            for ident in identifiers:
                ident.live = True
                _stamp(ident, actor, reason).save()
    except IntegrityError as exc:
        if "uniq_live_identifier" not in str(exc):
            raise
        _check_identifiers_free(
            tuple(IdentifierData(system=i.system, value=i.value) for i in identifiers), owner=patient
        )
        raise
    patient.deleted_at = None
    patient.deleted_by = None
    _bump(patient, actor, reason)
    patient_changed.send(sender=Patient, patient=patient, action="restored", actor=actor)
    return patient


@retry_on_conflict
@transaction.atomic
def purge_patient(*, patient: Patient, actor, reason: str) -> None:
    """Delete a soft-deleted patient and its rows for good; their history keeps who and why.

    Only soft-deleted patients are purged: the soft delete already freed the
    identifiers and told the search index, so the purge is a deliberate second step.
    """
    patient = Patient.all_objects.select_for_update().get(pk=patient.pk)
    if patient.deleted_at is None:
        raise PatientStateError("Only a deleted patient can be purged: delete it first.")
    if Link.all_objects.filter(other=patient).exists():
        raise PatientStateError("Other patients link to this one: remove their links first.")
    # Row by row, not by cascade: each history row must carry the actor and the reason.
    for model in (Link, Contact, Address, Identifier, Name, Patient):
        rows = [patient] if model is Patient else model.all_objects.filter(patient=patient)
        for row in rows:
            row._history_user = actor
            row._change_reason = reason
            try:
                row.delete()
            except (ProtectedError, RestrictedError) as exc:
                raise PatientStateError(
                    "Other records (merge history, match candidates, ...) still refer to this patient."
                ) from exc
    patient_purged.send(sender=Patient, uuid=patient.uuid, actor=actor, reason=reason)


def patient_to_data(patient: Patient) -> PatientData:
    """The data shape of a stored patient: what an update would need to change nothing."""
    return load_patient_data([patient.pk], include_deleted=True)[patient.pk]
