"""Pure mappers between a FHIR R4 ``Patient`` (JSON) and the registry's ``PatientData``.

Input is validated in three layers, each error pointing at the FHIRPath of the input:
``fhir.resources.R4B`` for the structure (unknown elements, wrong types: 400), our own
checks of coded values and of what the registry can store (it accepts ``gender: "M"``
or ``link.type: "merged"``; we answer 422), then ``clean_patient_data``, the rules every
interface shares (422). No database access: references are turned into UUIDs here and
resolved by the services. See docs/fhir.md for the element-by-element mapping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from uuid import UUID

import pydantic
from django.core.exceptions import ValidationError
from fhir.resources.R4B.patient import Patient as R4BPatient

from fhir_api.errors import FhirError, issue, unreadable_structure
from patients.codes import (
    MERGE_LINK_TYPES,
    AddressType,
    AddressUse,
    ContactSystem,
    ContactUse,
    Gender,
    IdentifierType,
    IdentifierUse,
    LinkType,
    MaritalStatus,
    NameUse,
)
from patients.data import (
    AddressData,
    ContactData,
    IdentifierData,
    LinkData,
    NameData,
    PatientData,
    clean_patient_data,
)

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_MARITAL_STATUS = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"

# Elements we store. Others are refused (422) rather than silently dropped, except the
# ones a server may ignore without changing the meaning: narrative, meta, language and
# (non-modifier) extensions.
IGNORED_ELEMENTS = frozenset({"id", "meta", "text", "language", "extension"})
STORED_ELEMENTS = frozenset(
    {
        "identifier", "active", "name", "telecom", "gender", "birthDate", "deceasedBoolean",
        "deceasedDateTime", "address", "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger",
        "managingOrganization", "link",
    }
)  # fmt: skip

# PatientData field names -> FHIR element names, for error expressions.
_ELEMENT_OF_FIELD = {
    "names": "name",
    "identifiers": "identifier",
    "addresses": "address",
    "contacts": "telecom",
    "links": "link",
    "birth_date": "birthDate",
    "deceased_at": "deceasedDateTime",
    "deceased": "deceasedBoolean",
    "marital_status": "maritalStatus",
    "multiple_birth": "multipleBirthBoolean",
    "multiple_birth_order": "multipleBirthInteger",
    "managing_organization": "managingOrganization",
    "postal_code": "postalCode",
    "period_start": "period.start",
    "period_end": "period.end",
}
_SEGMENT = re.compile(r"^([A-Za-z_]+)((?:\[\d+\])*)$")
_REFERENCE = re.compile(r"(?:^|/)(Patient|Organization)/([0-9a-fA-F-]{32,36})(?:/_history/\d+)?$")
_FULL_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T.*)?$")


def fhir_expression(path: str | None, resource_type: str = "Patient") -> str:
    """A ``PatientData`` field path as FHIRPath: ``names[0].family`` -> ``Patient.name[0].family``."""
    if not path or path == "__all__":
        return resource_type
    parts = [resource_type]
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        name, index = match.groups() if match else (segment, "")
        parts.append(_ELEMENT_OF_FIELD.get(name, name) + index)
    return ".".join(parts)


def _label(choices, code: str) -> str:
    return str(dict(choices.choices).get(code, code))


# --- Stored patient -> FHIR ----------------------------------------------------------


def _period(item) -> dict:
    period = {}
    if item.period_start:
        period["start"] = item.period_start.isoformat()
    if item.period_end:
        period["end"] = item.period_end.isoformat()
    return {"period": period} if period else {}


def _compact(element: dict) -> dict:
    """Drop empty values: FHIR forbids empty strings, arrays and objects."""
    return {k: v for k, v in element.items() if v not in ("", None, [], {}, ())}


def _name_to_fhir(n: NameData) -> dict:
    return _compact(
        {
            "use": n.use,
            "text": n.text,
            "family": n.family,
            "given": list(n.given),
            "prefix": list(n.prefix),
            "suffix": list(n.suffix),
            **_period(n),
        }
    )


def _identifier_to_fhir(i: IdentifierData) -> dict:
    type_ = (
        {"coding": [{"system": V2_0203, "code": i.type, "display": _label(IdentifierType, i.type)}]}
        if i.type
        else None
    )
    return _compact(
        {
            "use": i.use,
            "type": type_,
            "system": i.system,
            "value": i.value,
            **_period(i),
            "assigner": {"display": i.assigner} if i.assigner else None,
        }
    )


def _contact_to_fhir(c: ContactData) -> dict:
    return _compact({"system": c.system, "value": c.value, "use": c.use, "rank": c.rank, **_period(c)})


def _address_to_fhir(a: AddressData) -> dict:
    return _compact(
        {
            "use": a.use,
            "type": a.type,
            "text": a.text,
            "line": list(a.line),
            "city": a.city,
            "district": a.district,
            "state": a.state,
            "postalCode": a.postal_code,
            "country": a.country,
            **_period(a),
        }
    )


def _marital_status_to_fhir(code: str) -> dict:
    system = V3_NULL_FLAVOR if code == MaritalStatus.UNKNOWN else V3_MARITAL_STATUS
    return {"coding": [{"system": system, "code": code, "display": _label(MaritalStatus, code)}]}


def data_to_fhir(
    data: PatientData,
    *,
    id: UUID | str,
    version: int,
    last_updated: datetime | None,
    organization_name: str = "",
) -> dict:
    """A Patient resource from the data shape (whose ``links`` may include merge links).

    References are relative (``Patient/<uuid>``), as the spec recommends for resources
    of the same server.
    """
    meta = {"versionId": str(version)}
    if last_updated is not None:
        meta["lastUpdated"] = last_updated.isoformat()
    resource: dict = {"resourceType": "Patient", "id": str(id), "meta": meta}
    resource["identifier"] = [_identifier_to_fhir(i) for i in data.identifiers]
    resource["active"] = data.active
    resource["name"] = [_name_to_fhir(n) for n in data.names]
    resource["telecom"] = [_contact_to_fhir(c) for c in data.contacts]
    resource["gender"] = data.gender
    resource["birthDate"] = data.birth_date.isoformat() if data.birth_date else None
    if data.deceased_at is not None:
        resource["deceasedDateTime"] = data.deceased_at.isoformat()
    elif data.deceased:
        resource["deceasedBoolean"] = True
    resource["address"] = [_address_to_fhir(a) for a in data.addresses]
    if data.marital_status:
        resource["maritalStatus"] = _marital_status_to_fhir(data.marital_status)
    if data.multiple_birth_order is not None:
        resource["multipleBirthInteger"] = data.multiple_birth_order
    elif data.multiple_birth is not None:
        resource["multipleBirthBoolean"] = data.multiple_birth
    if data.managing_organization:
        resource["managingOrganization"] = _compact(
            {"reference": f"Organization/{data.managing_organization}", "display": organization_name}
        )
    resource["link"] = [
        {"other": {"reference": f"Patient/{link.other}"}, "type": link.type} for link in data.links
    ]
    return _compact(resource)


def _model_data(patient) -> PatientData:
    """The data shape of a Patient instance whose children are prefetched, merge links included."""
    from patients.queries import ADDRESS_FIELDS, CONTACT_FIELDS, IDENTIFIER_FIELDS, NAME_FIELDS

    def values(row, fields):
        return {f: tuple(v) if isinstance(v, list) else v for f, v in ((f, getattr(row, f)) for f in fields)}

    return PatientData(
        **{f: getattr(patient, f) for f in PatientData.SCALAR_FIELDS},
        managing_organization=patient.managing_organization.uuid
        if patient.managing_organization_id
        else None,
        names=tuple(NameData(primary=r.primary, **values(r, NAME_FIELDS)) for r in patient.names.all()),
        identifiers=tuple(
            IdentifierData(system=r.system, value=r.value, **values(r, IDENTIFIER_FIELDS))
            for r in sorted(patient.identifiers.all(), key=lambda r: r.pk)
        ),
        addresses=tuple(
            AddressData(primary=r.primary, **values(r, ADDRESS_FIELDS)) for r in patient.addresses.all()
        ),
        # By id, i.e. in the order they were given, not grouped by system.
        contacts=tuple(
            ContactData(**values(r, CONTACT_FIELDS))
            for r in sorted(patient.contacts.all(), key=lambda r: r.pk)
        ),
        links=tuple(
            LinkData(other=r.other.uuid, type=r.type, reason=r.reason)
            for r in sorted(patient.links.all(), key=lambda r: r.pk)
        ),
    )


def patient_to_fhir(patient, *, base_url: str = "") -> dict:
    """The Patient resource of a stored patient (fetch it with ``Patient.objects.with_children()``
    to avoid a query per child table). ``base_url`` is accepted for symmetry with the Bundle
    helpers; references inside the resource are relative.
    """
    del base_url  # references are relative; fullUrl is the Bundle's business
    return data_to_fhir(
        _model_data(patient),
        id=patient.uuid,
        version=patient.version,
        last_updated=patient.updated_at,
        organization_name=patient.managing_organization.name if patient.managing_organization_id else "",
    )


def patients_to_fhir(patients: Iterable, *, base_url: str = "") -> list[dict]:
    """Patient resources for many patients in one query, in the given order.

    ``patients`` are Patient instances (or primary keys); they are read again with their
    children (``patients.children.many_with_children``) whatever their number.
    """
    from patients.children import many_with_children

    items = list(patients)
    pks = [p if isinstance(p, int) else p.pk for p in items]
    loaded = many_with_children(pks)
    return [patient_to_fhir(loaded[pk], base_url=base_url) for pk in pks if pk in loaded]


ORGANIZATION_URI_SYSTEM = "urn:ietf:rfc:3986"


def organization_to_fhir(org) -> dict:
    """The Organization resource of a facility: the URI of the identifiers it issues, if
    any, as an identifier of system ``urn:ietf:rfc:3986`` ("the value is a URI")."""
    resource: dict = {"resourceType": "Organization", "id": str(org.uuid), "active": org.active}
    if org.identifier_system:
        resource["identifier"] = [{"system": ORGANIZATION_URI_SYSTEM, "value": org.identifier_system}]
    resource["name"] = org.name
    return resource


def full_url(base_url: str, patient_uuid: UUID | str) -> str:
    """The Bundle ``fullUrl`` of a patient: ``<base>/Patient/<uuid>``."""
    return f"{base_url.rstrip('/')}/Patient/{patient_uuid}"


# --- FHIR -> PatientData -------------------------------------------------------------


class _Issues:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, expression: str, diagnostics: str, code: str = "invalid") -> None:
        self.items.append(issue(code, diagnostics, expression=[expression]))

    def code(self, expression: str, value, choices) -> str:
        if value in (None, ""):
            return ""
        if value not in choices.values:
            allowed = ", ".join(choices.values)
            self.add(expression, f"Unknown code {value!r}; expected one of: {allowed}.", "code-invalid")
            return ""
        return value

    def raise_if_any(self, status: int = 422) -> None:
        if self.items:
            first = self.items[0]
            raise FhirError(
                status,
                first["code"],
                first["diagnostics"],
                expression=first.get("expression"),
                issues=self.items,
            )


def structure_issues(resource: dict, model=R4BPatient, root: str = "Patient") -> list[dict]:
    """fhir.resources' verdict on the structure, one issue per error, with FHIRPath."""
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        issues = []
        for err in exc.errors():
            path = root
            for part in err["loc"]:
                path += f"[{part}]" if isinstance(part, int) else f".{part}"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"Unknown element: R4 {root} has no such element."
            issues.append(issue("structure", message, expression=[path]))
        return issues
    except (ValueError, TypeError, KeyError) as exc:  # fhir.resources raises these for some inputs
        diagnostics, where = unreadable_structure(resource, root, exc)
        return [issue("structure", diagnostics, expression=[where])]
    except RecursionError:  # a resource built in code; request bodies are depth-limited on parsing
        return [issue("structure", "The resource is nested too deeply.", expression=[root])]
    return []


def _find_modifier_extensions(value, path: str) -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}"
            if key == "modifierExtension":
                found.append(sub)
            else:
                found += _find_modifier_extensions(item, sub)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _find_modifier_extensions(item, f"{path}[{i}]")
    return found


def _date(value, expression: str, issues: _Issues) -> date | None:
    """A FHIR date or dateTime as a day; partial dates are refused (we store days)."""
    if value in (None, ""):
        return None
    match = _FULL_DATE.match(str(value))
    if not match:
        issues.add(expression, f"{value!r}: a full date (YYYY-MM-DD) is needed; the registry stores days.")
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        issues.add(expression, f"{value!r} is not a calendar date.")
        return None


def _datetime(value, expression: str, issues: _Issues) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        issues.add(expression, f"{value!r}: expected a full date or a date and time with a time zone.")
        return None
    if parsed.tzinfo is None:
        issues.add(expression, f"{value!r}: a date and time needs a time zone.")
        return None
    return parsed


def _period_of(element: dict, expression: str, issues: _Issues) -> dict:
    period = element.get("period") or {}
    return {
        "period_start": _date(period.get("start"), f"{expression}.period.start", issues),
        "period_end": _date(period.get("end"), f"{expression}.period.end", issues),
    }


def _coding(concept: dict | None, systems: dict[str, object], expression: str, issues: _Issues) -> str:
    """The code of ``concept`` from one of ``systems`` (system -> its TextChoices)."""
    if not concept:
        return ""
    for i, coding in enumerate(concept.get("coding") or []):
        choices = systems.get(coding.get("system"))
        if choices is not None:
            return issues.code(f"{expression}.coding[{i}].code", coding.get("code"), choices)
    names = " or ".join(systems)
    issues.add(expression, f"A coding from {names} is needed; text alone or other systems are not stored.")
    return ""


def reference_id(reference: str | None, resource_type: str = "Patient") -> UUID | None:
    """The UUID in ``Patient/<uuid>`` (relative or absolute, with or without _history), else None."""
    match = _REFERENCE.search(reference or "")
    if not match or match.group(1) != resource_type:
        return None
    try:
        return UUID(match.group(2))
    except ValueError:
        return None


def _links(resource: dict, issues: _Issues, allowed_merge_links) -> tuple[tuple[LinkData, ...], list[int]]:
    links, positions = [], []
    for i, link in enumerate(resource.get("link") or []):
        path = f"Patient.link[{i}]"
        link_type = issues.code(f"{path}.type", link.get("type"), LinkType)
        reference = (link.get("other") or {}).get("reference")
        other = reference_id(reference)
        if other is None:
            issues.add(
                f"{path}.other",
                f"{reference!r} is not a reference to a patient of this server (Patient/<id>).",
            )
            continue
        if link_type in MERGE_LINK_TYPES:
            if (link_type, other) in allowed_merge_links:
                continue  # the server's own merge record, sent back unchanged: kept as it is
            issues.add(
                f"{path}.type",
                f"{link_type!r} links are written by merges only (Patient/$merge), not by create or update.",
                "business-rule",
            )
            continue
        if link_type:
            links.append(LinkData(other=other, type=link_type))
            positions.append(i)
    return tuple(links), positions


def patient_from_fhir(resource: dict, *, allowed_merge_links: Iterable[tuple[str, UUID]] = ()) -> PatientData:
    """Validate a FHIR Patient and return the cleaned ``PatientData``; raise ``FhirError``.

    400 for structural errors (what fhir.resources refuses), 422 for codes we do not know,
    elements we do not store and the registry's own rules. ``allowed_merge_links`` are the
    ``(type, other uuid)`` merge links the stored patient already has: a client that reads,
    changes and PUTs a merged record sends them back, and they are accepted unchanged.
    """
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "The body must be a JSON object (a FHIR resource).")
    if resource.get("resourceType") != "Patient":
        raise FhirError(
            400,
            "invalid",
            f"Expected a Patient resource, got resourceType {resource.get('resourceType')!r}.",
            expression=["resourceType"],
        )
    structure = structure_issues(resource)
    if structure:
        raise FhirError(400, "structure", structure[0]["diagnostics"], issues=structure)

    issues = _Issues()
    for key in resource:
        if key not in STORED_ELEMENTS | IGNORED_ELEMENTS | {"resourceType"}:
            issues.add(f"Patient.{key}", f"Patient.{key} is not stored by this registry.", "not-supported")
    for path in _find_modifier_extensions(resource, "Patient"):
        issues.add(
            path, "Modifier extensions are not supported: they would change the meaning.", "not-supported"
        )

    identifiers = []
    for i, ident in enumerate(resource.get("identifier") or []):
        path = f"Patient.identifier[{i}]"
        identifiers.append(
            IdentifierData(
                system=ident.get("system") or "",
                value=ident.get("value") or "",
                use=issues.code(f"{path}.use", ident.get("use"), IdentifierUse),
                type=_coding(ident.get("type"), {V2_0203: IdentifierType}, f"{path}.type", issues),
                assigner=(ident.get("assigner") or {}).get("display") or "",
                **_period_of(ident, path, issues),
            )
        )
    names = []
    for i, name in enumerate(resource.get("name") or []):
        path = f"Patient.name[{i}]"
        names.append(
            NameData(
                use=issues.code(f"{path}.use", name.get("use"), NameUse),
                text=name.get("text") or "",
                family=name.get("family") or "",
                given=tuple(name.get("given") or ()),
                prefix=tuple(name.get("prefix") or ()),
                suffix=tuple(name.get("suffix") or ()),
                primary=(i == 0),
                **_period_of(name, path, issues),
            )
        )
    contacts = []
    for i, telecom in enumerate(resource.get("telecom") or []):
        path = f"Patient.telecom[{i}]"
        system = issues.code(f"{path}.system", telecom.get("system"), ContactSystem)
        if not telecom.get("system"):
            issues.add(f"{path}.system", "A telecom needs a system (phone, email, ...).", "required")
        contacts.append(
            ContactData(
                system=system,
                value=telecom.get("value") or "",
                use=issues.code(f"{path}.use", telecom.get("use"), ContactUse),
                rank=telecom.get("rank"),
                **_period_of(telecom, path, issues),
            )
        )
    addresses = []
    for i, address in enumerate(resource.get("address") or []):
        path = f"Patient.address[{i}]"
        addresses.append(
            AddressData(
                use=issues.code(f"{path}.use", address.get("use"), AddressUse),
                type=issues.code(f"{path}.type", address.get("type"), AddressType),
                text=address.get("text") or "",
                line=tuple(address.get("line") or ()),
                city=address.get("city") or "",
                district=address.get("district") or "",
                state=address.get("state") or "",
                postal_code=address.get("postalCode") or "",
                country=address.get("country") or "",
                primary=(i == 0),
                **_period_of(address, path, issues),
            )
        )
    links, link_positions = _links(resource, issues, set(allowed_merge_links))

    organization = None
    if resource.get("managingOrganization"):
        reference = resource["managingOrganization"].get("reference")
        organization = reference_id(reference, "Organization")
        if organization is None:
            issues.add(
                "Patient.managingOrganization",
                f"{reference!r} is not a reference to an organization of this registry: Organization/<uuid>.",
            )

    multiple_birth = resource.get("multipleBirthBoolean")
    multiple_birth_order = resource.get("multipleBirthInteger")
    if multiple_birth_order is not None:
        multiple_birth = True  # a birth order says the patient is one of several
    deceased_at = _datetime(resource.get("deceasedDateTime"), "Patient.deceasedDateTime", issues)
    data = PatientData(
        names=tuple(names),
        identifiers=tuple(identifiers),
        addresses=tuple(addresses),
        contacts=tuple(contacts),
        links=links,
        active=resource.get("active", True),
        gender=issues.code("Patient.gender", resource.get("gender"), Gender),
        birth_date=_date(resource.get("birthDate"), "Patient.birthDate", issues),
        deceased=bool(resource.get("deceasedBoolean")) or deceased_at is not None,
        deceased_at=deceased_at,
        marital_status=_coding(
            resource.get("maritalStatus"),
            {V3_MARITAL_STATUS: MaritalStatus, V3_NULL_FLAVOR: MaritalStatus},
            "Patient.maritalStatus",
            issues,
        ),
        multiple_birth=multiple_birth,
        multiple_birth_order=multiple_birth_order,
        managing_organization=organization,
    )
    issues.raise_if_any()
    try:
        return clean_patient_data(data)
    except ValidationError as exc:
        raise validation_error(exc, link_positions=link_positions) from None


def validation_error(exc: ValidationError, *, link_positions: list[int] | None = None) -> FhirError:
    """A ``ValidationError`` keyed by ``PatientData`` paths as a 422 with FHIRPath expressions.

    ``link_positions`` maps the data's link indexes back to the resource's (merge links the
    mapper kept aside are not in the data).
    """
    items = []
    errors = exc.error_dict if hasattr(exc, "error_dict") else {"__all__": exc.error_list}
    for field, messages in errors.items():
        if link_positions is not None and field.startswith("links["):
            index = int(field[6 : field.index("]")])
            if index < len(link_positions):
                field = f"links[{link_positions[index]}]{field[field.index(']') + 1 :]}"
        for message in messages:
            text = message.message % message.params if message.params else message.message
            items.append(issue("invalid", str(text), expression=[fhir_expression(field)]))
    first = items[0]
    return FhirError(422, "invalid", first["diagnostics"], expression=first.get("expression"), issues=items)
