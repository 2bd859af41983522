"""Reads other apps need: stored patients as the ``PatientData`` shape, in bulk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from patients.codes import LinkType
from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData, PatientData
from patients.models import Address, Contact, Identifier, Link, Name, Patient

NAME_FIELDS = ("use", "family", "given", "prefix", "suffix", "text", "period_start", "period_end")
ADDRESS_FIELDS = (
    "use", "type", "line", "city", "district", "state", "postal_code", "country", "text",
    "period_start", "period_end",
)  # fmt: skip
CONTACT_FIELDS = ("system", "value", "normalized_value", "use", "rank", "period_start", "period_end")
IDENTIFIER_FIELDS = ("use", "type", "assigner", "period_start", "period_end")


def _values(row, fields: tuple[str, ...]) -> dict:
    return {f: tuple(v) if isinstance(v, list) else v for f, v in ((f, getattr(row, f)) for f in fields)}


def load_patient_data(patient_ids: Iterable[int], *, include_deleted: bool = False) -> dict[int, PatientData]:
    """``PatientData`` of the given patients in six queries, whatever their number.

    Children come in a fixed order (primary first, then by id), so the same stored
    patient always gives the same data. Soft-deleted patients are left out unless
    ``include_deleted``.
    """
    ids = list(patient_ids)
    patients = Patient.all_objects.filter(pk__in=ids).select_related("managing_organization")
    if not include_deleted:
        patients = patients.filter(deleted_at__isnull=True)
    patients = {p.pk: p for p in patients}
    if not patients:
        return {}
    names, identifiers, addresses, contacts, links = (defaultdict(list) for _ in range(5))
    for row in Name.all_objects.filter(patient_id__in=patients).order_by("patient_id", "-primary", "id"):
        names[row.patient_id].append(NameData(primary=row.primary, **_values(row, NAME_FIELDS)))
    for row in Identifier.all_objects.filter(patient_id__in=patients).order_by("patient_id", "id"):
        identifiers[row.patient_id].append(
            IdentifierData(system=row.system, value=row.value, **_values(row, IDENTIFIER_FIELDS))
        )
    for row in Address.all_objects.filter(patient_id__in=patients).order_by("patient_id", "-primary", "id"):
        addresses[row.patient_id].append(AddressData(primary=row.primary, **_values(row, ADDRESS_FIELDS)))
    for row in Contact.all_objects.filter(patient_id__in=patients).order_by("patient_id", "id"):
        contacts[row.patient_id].append(ContactData(**_values(row, CONTACT_FIELDS)))
    link_rows = (
        Link.all_objects.filter(patient_id__in=patients, type__in=[LinkType.REFER, LinkType.SEEALSO])
        .order_by("patient_id", "id")
        .values_list("patient_id", "other__uuid", "type", "reason")
    )
    for patient_id, other, link_type, reason in link_rows:
        links[patient_id].append(LinkData(other=other, type=link_type, reason=reason))
    return {
        pk: PatientData(
            **{f: getattr(p, f) for f in PatientData.SCALAR_FIELDS},
            managing_organization=p.managing_organization.uuid if p.managing_organization_id else None,
            names=tuple(names[pk]),
            identifiers=tuple(identifiers[pk]),
            addresses=tuple(addresses[pk]),
            contacts=tuple(contacts[pk]),
            links=tuple(links[pk]),
        )
        for pk, p in patients.items()
    }
