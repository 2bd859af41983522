"""Reads other apps need: stored patients as the ``PatientData`` shape, in bulk."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import date

from django.db.models import QuerySet

from patients.children import ChildRows
from patients.codes import LinkType
from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData, PatientData
from patients.models import Patient

NAME_FIELDS = ("use", "family", "given", "prefix", "suffix", "text", "period_start", "period_end")
ADDRESS_FIELDS = (
    "use", "type", "line", "city", "district", "state", "postal_code", "country", "text",
    "period_start", "period_end",
)  # fmt: skip
CONTACT_FIELDS = ("system", "value", "normalized_value", "use", "rank", "period_start", "period_end")
IDENTIFIER_FIELDS = ("use", "type", "assigner", "period_start", "period_end")


_DATES = frozenset({"period_start", "period_end"})


def _values(row: dict, fields: tuple[str, ...]) -> dict:
    """A child row (``to_jsonb``) as data fields: lists as tuples, dates parsed."""
    found = {}
    for f in fields:
        v = row[f]
        if isinstance(v, list):
            v = tuple(v)
        elif f in _DATES and v is not None:
            v = date.fromisoformat(v)
        found[f] = v
    return found


# The children of each patient, in one query with the patients (patients/children.py):
# the order is part of the contract (the same stored patient always gives the same data).
_CHILDREN = {
    "_names": ChildRows("patients_name", 'c."primary" DESC, c.id'),
    "_identifiers": ChildRows("patients_identifier", "c.id"),
    "_addresses": ChildRows("patients_address", 'c."primary" DESC, c.id'),
    "_contacts": ChildRows("patients_contact", "c.id"),
    "_links": ChildRows(
        "patients_link",
        "c.id",
        row="jsonb_build_object('other', o.uuid, 'type', c.type, 'reason', c.reason)",
        join="JOIN patients_patient o ON o.id = c.other_id",
        where=f"AND c.type IN ('{LinkType.REFER.value}', '{LinkType.SEEALSO.value}')",
    ),
}
# The same with the merge links (replaced-by, replaces) too: the patient as the FHIR read shows it.
_CHILDREN_WITH_MERGES = {
    **_CHILDREN,
    "_links": ChildRows(
        "patients_link",
        "c.id",
        row="jsonb_build_object('other', o.uuid, 'type', c.type, 'reason', c.reason)",
        join="JOIN patients_patient o ON o.id = c.other_id",
    ),
}


def load_patient_data(patient_ids: Iterable[int], *, include_deleted: bool = False) -> dict[int, PatientData]:
    """``PatientData`` of the given patients in one query, whatever their number.

    Children come in a fixed order (primary first, then by id), so the same stored
    patient always gives the same data. Soft-deleted patients are left out unless
    ``include_deleted``.
    """
    return {pk: data for pk, (_, data) in load_patients(patient_ids, include_deleted=include_deleted).items()}


def load_patients(
    patient_ids: Iterable[int], *, include_deleted: bool = False
) -> dict[int, tuple[uuid.UUID, PatientData]]:
    """As ``load_patient_data``, with each patient's uuid (its public id)."""
    ids = list(patient_ids)
    if not ids:
        return {}
    patients = Patient.all_objects.filter(pk__in=ids)
    if not include_deleted:
        patients = patients.filter(deleted_at__isnull=True)
    return {p.pk: (p.uuid, data) for p, data in with_data(patients)}


def with_data(patients: QuerySet, *, merge_links: bool = False) -> Iterator[tuple[Patient, PatientData]]:
    """Each patient of the query set with its ``PatientData``, in the same one query;
    ``merge_links``: with the replaced-by / replaces links too (as the FHIR read)."""
    children = _CHILDREN_WITH_MERGES if merge_links else _CHILDREN
    for p in patients.select_related("managing_organization").annotate(**children):
        yield p, _data(p)


def _data(p: Patient) -> PatientData:
    return PatientData(
        **{f: getattr(p, f) for f in PatientData.SCALAR_FIELDS},
        managing_organization=p.managing_organization.uuid if p.managing_organization_id else None,
        names=tuple(NameData(primary=row["primary"], **_values(row, NAME_FIELDS)) for row in p._names),
        identifiers=tuple(
            IdentifierData(system=row["system"], value=row["value"], **_values(row, IDENTIFIER_FIELDS))
            for row in p._identifiers
        ),
        addresses=tuple(
            AddressData(primary=row["primary"], **_values(row, ADDRESS_FIELDS)) for row in p._addresses
        ),
        contacts=tuple(ContactData(**_values(row, CONTACT_FIELDS)) for row in p._contacts),
        links=tuple(
            LinkData(other=uuid.UUID(row["other"]), type=row["type"], reason=row["reason"])
            for row in p._links
        ),
    )
