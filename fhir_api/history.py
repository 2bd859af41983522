"""Past versions of a patient as FHIR resources: vread and the history Bundles.

Scalars come from the HistoricalPatient row of each version; children (names,
identifiers, addresses, telecom, links) are replayed from the per-version changes that
``patients.api.history.patient_versions`` attributes (the same attribution the REST
history shows). A fixed number of queries per patient, whatever the number of versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from fhir_api.mapping import data_to_fhir
from patients.api.history import patient_versions
from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData, PatientData
from patients.models import Organization, Patient

# History entries: what the request of each kind of version looked like.
REQUEST_OF_ACTION = {
    "created": ("POST", "201 Created"),
    "updated": ("PUT", "200 OK"),
    "restored": ("PUT", "200 OK"),
    "deleted": ("DELETE", "204 No Content"),
    "purged": ("DELETE", "204 No Content"),
}


@dataclass(frozen=True)
class Version:
    uuid: UUID
    version: int
    at: datetime
    action: str
    resource: dict | None  # None for a deleted (or purged) version


def _day(value):
    return date.fromisoformat(value) if value else None


def _periods(values: dict) -> dict:
    return {"period_start": _day(values.get("period_start")), "period_end": _day(values.get("period_end"))}


def _tuple(value) -> tuple:
    return tuple(value or ())


def _data(row, children: dict[str, list[dict]], organizations: dict[int, UUID]) -> PatientData:
    names = sorted(children["names"], key=lambda v: not v.get("primary"))
    addresses = sorted(children["addresses"], key=lambda v: not v.get("primary"))
    return PatientData(
        **{f: getattr(row, f) for f in PatientData.SCALAR_FIELDS},
        managing_organization=organizations.get(row.managing_organization_id),
        names=tuple(
            NameData(
                use=v["use"], family=v["family"], given=_tuple(v["given"]), prefix=_tuple(v["prefix"]),
                suffix=_tuple(v["suffix"]), text=v["text"], primary=v.get("primary", False), **_periods(v),
            )
            for v in names
        ),
        identifiers=tuple(
            IdentifierData(
                system=v["system"], value=v["value"], use=v["use"], type=v["type"], assigner=v["assigner"],
                **_periods(v),
            )
            for v in children["identifiers"]
        ),
        addresses=tuple(
            AddressData(
                use=v["use"], type=v["type"], line=_tuple(v["line"]), city=v["city"], district=v["district"],
                state=v["state"], postal_code=v["postal_code"], country=v["country"], text=v["text"],
                primary=v.get("primary", False), **_periods(v),
            )
            for v in addresses
        ),
        contacts=tuple(
            ContactData(system=v["system"], value=v["value"], use=v["use"], rank=v["rank"], **_periods(v))
            for v in children["contacts"]
        ),
        links=tuple(
            LinkData(other=UUID(v["other"]), type=v["type"], reason=v["reason"])
            for v in children["links"]
            if v.get("other")
        ),
    )  # fmt: skip


def _apply(items: list[dict], change: dict) -> None:
    if change["op"] == "add":
        items.append(change["new"])
    elif change["op"] == "remove":
        if change["old"] in items:
            items.remove(change["old"])
    elif change["old"] in items:  # "change": in place, so the order stays the order of entry
        items[items.index(change["old"])] = change["new"]
    else:
        items.append(change["new"])


def patient_history(patient: Patient) -> list[Version]:
    """Every version of ``patient`` as a resource, oldest first."""
    rows = {row.version: row for row in patient.history.order_by("history_date", "history_id")}
    org_ids = {r.managing_organization_id for r in rows.values()} - {None}
    orgs = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "uuid")) if org_ids else {}
    names = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "name")) if org_ids else {}
    children: dict[str, list[dict]] = {
        k: [] for k in ("names", "identifiers", "addresses", "contacts", "links")
    }
    versions = []
    for entry in reversed(patient_versions(patient)):
        for change in entry["changes"]:
            if change["field"] in children:
                _apply(children[change["field"]], change)
        row = rows.get(entry["version"])
        if row is None:
            continue
        resource = None
        if row.deleted_at is None and entry["action"] != "purged":
            resource = data_to_fhir(
                _data(row, children, orgs),
                id=patient.uuid,
                version=row.version,
                last_updated=row.history_date,
                organization_name=names.get(row.managing_organization_id, ""),
            )
        versions.append(
            Version(
                uuid=patient.uuid,
                version=row.version,
                at=row.history_date,
                action=entry["action"],
                resource=resource,
            )
        )
    return versions


def history_entry(version: Version, *, base_url: str) -> dict:
    """A ``Bundle.entry`` of a history Bundle."""
    method, status = REQUEST_OF_ACTION.get(version.action, ("PUT", "200 OK"))
    entry: dict = {"fullUrl": f"{base_url}/Patient/{version.uuid}"}
    if version.resource is not None:
        entry["resource"] = version.resource
    entry["request"] = {"method": method, "url": "Patient" if method == "POST" else f"Patient/{version.uuid}"}
    entry["response"] = {
        "status": status,
        "etag": f'W/"{version.version}"',
        "lastModified": version.at.isoformat(),
    }
    return entry
