"""Bulk writes for the importer: many patients per transaction, the same rules as one.

``write_batch`` takes a batch of records (source position + ``PatientData``) and, in
one transaction, creates the new patients with one COPY per table
(``patients.copyrows``: the rows and history rows ``bulk_create_with_history`` would
write, each history row with the actor and the reason), updates existing ones through
``patients.services.update_patient`` and counts the rest as unchanged. It validates
with ``clean_patient_data`` and applies the identifier rules of ``register_patient``
/ ``update_patient``; a record it cannot write is returned as a reject, never raised.

Which patient a record is: its **key identifier** (the first identifier, or the first
of ``key_system``). A live patient holding it is that record's patient (update or
unchanged); none holding it means a new patient. Any *other* identifier of the record
held by a different patient rejects the record, as ``register_patient`` would.
Records without a key are rejected unless ``allow_unidentified`` (then they are always
created, so re-running the file creates them again).

Created patients are announced with ``patients.signals.patients_bulk_created`` inside
the transaction: the search app indexes them and the matching app matches them, in
bulk. ``patients`` imports no other app.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from patients.copyrows import insert_values_with_history, insert_with_history
from patients.data import IdentifierData, PatientData, clean_patient_data
from patients.errors import PatientConflict
from patients.models import Address, Contact, Identifier, Name, Organization, Patient
from patients.queries import ADDRESS_FIELDS, CONTACT_FIELDS, IDENTIFIER_FIELDS, NAME_FIELDS, load_patient_data
from patients.services import register_patient, update_patient
from patients.signals import patients_bulk_created

# Counters of a batch, in summary order.
COUNTERS = ("created", "updated", "unchanged", "rejected", "duplicates_opened")


@dataclass(frozen=True)
class Reject:
    """A record that was not written: ``errors`` maps data paths (``names[0].family``,
    ``identifiers[1]``, ``""`` for the whole record) to messages."""

    number: int
    errors: dict[str, list[str]]


@dataclass
class BatchResult:
    counts: Counter = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)

    def reject(self, number: int, errors: dict[str, list[str]]) -> None:
        self.rejects.append(Reject(number, errors))
        self.counts["rejected"] += 1


@dataclass(frozen=True)
class _Record:
    number: int
    data: PatientData  # cleaned
    key: IdentifierData | None


def error_dict(exc: Exception) -> dict[str, list[str]]:
    """Field path -> messages of a service error, in the shape of ``Reject.errors``."""
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return {("" if k == "__all__" else k): list(v) for k, v in exc.message_dict.items()}
        return {"": list(exc.messages)}
    if isinstance(exc, PatientConflict):
        return {exc.field or "": [exc.message]}
    raise TypeError(exc)


def key_identifier(data: PatientData, key_system: str | None) -> IdentifierData | None:
    if key_system:
        return next((i for i in data.identifiers if i.system == key_system), None)
    return data.identifiers[0] if data.identifiers else None


def write_batch(
    records: Sequence[tuple[int, PatientData]],
    *,
    actor=None,
    reason: str = "Imported",
    key_system: str | None = None,
    allow_unidentified: bool = False,
    match: bool = True,
) -> BatchResult:
    """Write one batch in one transaction; see the module docstring for the rules."""
    result = BatchResult()
    with transaction.atomic():
        ready = _clean(records, result, key_system=key_system, allow_unidentified=allow_unidentified)
        for round_ in _rounds(ready):
            _write_round(round_, result, actor=actor, reason=reason, match=match)
    return result


def _clean(records, result: BatchResult, *, key_system, allow_unidentified) -> list[_Record]:
    ready = []
    for number, data in records:
        try:
            cleaned = clean_patient_data(data)
        except ValidationError as exc:
            result.reject(number, error_dict(exc))
            continue
        key = key_identifier(cleaned, key_system)
        if key is None and not allow_unidentified:
            message = (
                f"No identifier of the key system {key_system}."
                if key_system
                else "No identifier: an imported record needs one to be found again on a re-run "
                "(--allow-unidentified loads it anyway)."
            )
            result.reject(number, {"identifiers": [message]})
            continue
        ready.append(_Record(number, cleaned, key))
    return ready


def _rounds(records: list[_Record]) -> list[list[_Record]]:
    """Split a batch so that no identifier appears twice in one round.

    A file may carry one person twice (a corrected row further down): the second
    record must see the first one's patient, so it waits for the next round.
    Nearly every batch is a single round.
    """
    rounds: list[list[_Record]] = []
    used: list[set] = []
    for record in records:
        keys = {(i.system, i.value) for i in record.data.identifiers}
        for i, round_keys in enumerate(used):
            if not keys & round_keys:
                rounds[i].append(record)
                round_keys |= keys
                break
        else:
            rounds.append([record])
            used.append(set(keys))
    return rounds


def _holders(records: list[_Record]) -> dict[tuple[str, str], tuple[int, object]]:
    """(system, value) -> (patient id, patient uuid) of the live identifiers in ``records``."""
    wanted = {(i.system, i.value) for r in records for i in r.data.identifiers}
    if not wanted:
        return {}
    rows = Identifier.all_objects.filter(live=True, value__in={v for _, v in wanted}).values_list(
        "system", "value", "patient_id", "patient__uuid"
    )
    return {(s, v): (pid, uuid) for s, v, pid, uuid in rows if (s, v) in wanted}


def _owner(record: _Record, holders: dict) -> int | None:
    if record.key is None:
        return None
    return holders.get((record.key.system, record.key.value), (None, None))[0]


def _write_round(records: list[_Record], result: BatchResult, *, actor, reason: str, match: bool) -> None:
    holders = _holders(records)
    creates: list[_Record] = []
    updates: list[tuple[_Record, int]] = []
    for record in records:
        owner = _owner(record, holders)
        conflict = next(
            (
                (i, ident)
                for i, ident in enumerate(record.data.identifiers)
                if holders.get((ident.system, ident.value), (owner,))[0] != owner
            ),
            None,
        )
        if conflict is not None:
            i, ident = conflict
            holder = holders[(ident.system, ident.value)][1]
            message = f"Identifier {ident.system}|{ident.value} already belongs to patient {holder}."
            result.reject(record.number, {f"identifiers[{i}]": [message]})
        elif record.data.links:
            # Links name other patients by UUID and are kept symmetric: rare in a load,
            # so they take the one-record path with all its checks.
            _one_by_one([(record, owner)], result, actor=actor, reason=reason)
        elif owner is None:
            creates.append(record)
        else:
            updates.append((record, owner))
    if creates:
        try:
            with transaction.atomic():
                _create(creates, result, actor=actor, reason=reason, match=match)
        except IntegrityError:
            # Another writer registered one of these identifiers since we looked (the
            # unique index caught it): redo this round record by record, each with
            # the services' own checks, so only the records in conflict are rejected.
            _one_by_one([(r, None) for r in creates], result, actor=actor, reason=reason)
    if updates:
        _update(updates, result, actor=actor, reason=reason)


def _organizations(records: list[_Record]) -> dict:
    """managing_organization UUID -> Organization id, for the UUIDs the records name."""
    wanted = {r.data.managing_organization for r in records if r.data.managing_organization}
    if not wanted:
        return {}
    return dict(Organization.objects.filter(uuid__in=wanted).values_list("uuid", "pk"))


def _create(records: list[_Record], result: BatchResult, *, actor, reason: str, match: bool) -> None:
    """Multi-row INSERTs for the patients and each kind of child row, each with history."""
    organizations = _organizations(records)
    fresh = []
    for record in records:
        org = record.data.managing_organization
        if org is not None and org not in organizations:
            result.reject(record.number, {"managing_organization": ["Unknown organization."]})
        else:
            fresh.append(record)
    if not fresh:
        return
    patients = [
        Patient(
            **{f: getattr(r.data, f) for f in PatientData.SCALAR_FIELDS},
            managing_organization_id=organizations.get(r.data.managing_organization),
            created_by=actor,
            updated_by=actor,
        )
        for r in fresh
    ]
    when = timezone.now()
    insert_with_history(patients, Patient, user=actor, reason=reason, when=when)
    children: dict[type, list] = {Name: [], Address: [], Contact: [], Identifier: []}
    for patient, record in zip(patients, fresh, strict=True):
        for model, row in child_rows(patient, record.data):
            children[model].append(row)
    for model, rows in children.items():
        insert_values_with_history(rows, model, user=actor, reason=reason, when=when)
    ids = [p.pk for p in patients]
    result.created_ids.extend(ids)
    result.counts["created"] += len(ids)
    responses = patients_bulk_created.send(
        sender=Patient,
        patient_ids=ids,
        data={p.pk: r.data for p, r in zip(patients, fresh, strict=True)},
        actor=actor,
        match=match,
    )
    for _, response in responses:
        if isinstance(response, dict):
            result.counts.update(response)


def child_rows(patient: Patient, data: PatientData):
    """(model, row as ``{attname: value}``) of every child of a cleaned ``data``, as
    ``register_patient`` writes them (the other fields take their defaults)."""
    for n in data.names:
        yield Name, {"patient_id": patient.pk, "primary": n.primary, **_values(n, NAME_FIELDS)}
    for a in data.addresses:
        yield Address, {"patient_id": patient.pk, "primary": a.primary, **_values(a, ADDRESS_FIELDS)}
    for c in data.contacts:
        yield Contact, {"patient_id": patient.pk, **_values(c, CONTACT_FIELDS)}
    for i in data.identifiers:
        yield (
            Identifier,
            {"patient_id": patient.pk, "system": i.system, "value": i.value, **_values(i, IDENTIFIER_FIELDS)},
        )


def _values(item, fields: tuple[str, ...]) -> dict:
    # Tuples become lists for the ArrayFields, as in patients.services.
    values = {f: getattr(item, f) for f in fields}
    return {f: list(v) if isinstance(v, tuple) else v for f, v in values.items()}


def same_data(a: PatientData, b: PatientData) -> bool:
    """Would an update from ``a`` to ``b`` change nothing? Child rows compare as
    multisets (``update_patient`` matches rows on content, whatever their order)."""
    scalars = (*PatientData.SCALAR_FIELDS, "managing_organization")
    if any(getattr(a, f) != getattr(b, f) for f in scalars):
        return False
    return all(
        Counter(getattr(a, f)) == Counter(getattr(b, f))
        for f in ("names", "identifiers", "addresses", "contacts", "links")
    )


def _update(updates: list[tuple[_Record, int]], result: BatchResult, *, actor, reason: str) -> None:
    # Lock every target first, in primary-key order like every other writer, so this
    # long transaction cannot deadlock with a merge locking two of them.
    targets = Patient.all_objects.select_for_update(no_key=True).filter(pk__in={pk for _, pk in updates})
    locked = {p.pk: p for p in targets.order_by("pk")}
    stored = load_patient_data(locked, include_deleted=True)
    changed = []
    for record, pk in updates:
        if pk in stored and same_data(stored[pk], record.data):
            result.counts["unchanged"] += 1
        else:
            changed.append((record, pk))
    _one_by_one([(r, locked[pk]) for r, pk in changed], result, actor=actor, reason=reason)


def _one_by_one(items, result: BatchResult, *, actor, reason: str) -> None:
    """The services, one record at a time, each in a savepoint: for updates, links and
    the rare round that lost an identifier race."""
    for record, patient in items:
        if isinstance(patient, int):
            patient = Patient.all_objects.get(pk=patient)
        try:
            with transaction.atomic():
                if patient is None:
                    created = register_patient(data=record.data, actor=actor, reason=reason)
                    result.counts["created"] += 1
                    result.created_ids.append(created.pk)
                else:
                    before = patient.version
                    updated = update_patient(
                        patient=patient, data=record.data, expected_version=None, actor=actor, reason=reason
                    )
                    result.counts["updated" if updated.version != before else "unchanged"] += 1
        except (ValidationError, PatientConflict) as exc:
            result.reject(record.number, error_dict(exc))
