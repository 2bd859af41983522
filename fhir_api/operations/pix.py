"""``Patient/$ihe-pix``: IHE PIXm ITI-83, the identifier cross-reference query.

https://profiles.ihe.net/ITI/PIXm/ITI-83.html, its failure modes followed as written:

- a ``sourceIdentifier`` whose system (the assigning authority) the MPI does not know:
  400, ``code-invalid``, "sourceIdentifier Assigning Authority not found";
- a known system but no live patient holding the value: 404, ``not-found``,
  "sourceIdentifier Patient Identifier not found" (also for a deleted patient: the
  spec's "Post Merge/Delete" lets a manager answer 404);
- a ``targetSystem`` the MPI does not know: 403, ``code-invalid``, "targetSystem not found".

A system is known when an identifier of it was ever recorded, or an Organization
issues it, or it is this server's own base (``<base>|Patient/<id>``: a Patient's
logical id, which ITI-83 allows as a source identifier). Resolution follows merges
(``patients.api.resolve.resolve_identifier``): the identifiers of a merged-away record
name the survivor, whose identifiers — its own and those of every record merged into
it — are the answer, without the source identifier itself (ITI-83 2:3.83.4.2.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from fhir_api.mapping import data_to_fhir
from fhir_api.operations.parameters import OperationError, OperationInput, parameters, value
from matching.merging import live_record
from patients.api.resolve import resolve_identifier
from patients.data import IdentifierData, PatientData, clean_text
from patients.models import Identifier, Organization, Patient

PARAMETERS = ("sourceIdentifier", "targetSystem")
QUERY_TYPES = {"sourceIdentifier": "String", "targetSystem": "Uri"}


@dataclass(frozen=True)
class PixRequest:
    system: str
    value: str
    target_systems: tuple[str, ...]


def split_token(token: str) -> tuple[str, str] | None:
    """``system|value`` with FHIR search escapes (``\\|``); None without an unescaped '|'."""
    parts, current, escaped = [], "", False
    for char in token:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|" and not parts:
            parts.append(current)
            current = ""
        else:
            current += char
    if not parts:
        return None
    return parts[0], current


def read_input(params: OperationInput) -> PixRequest:
    params.reject_unknown(PARAMETERS)
    token, path = params.string("sourceIdentifier", required=True)
    split = split_token(token)
    if split is None or not clean_text(split[0]) or not clean_text(split[1]):
        raise OperationError(
            "sourceIdentifier must give the assigning authority and the value: system|value "
            "(e.g. urn:oid:1.3.6.1.4.1.21367.13.20.1000|IHERED-994).",
            expression=path,
        )
    targets = tuple(dict.fromkeys(clean_text(v) for v, _ in params.strings("targetSystem")))
    return PixRequest(clean_text(split[0]), clean_text(split[1]), targets)


def known_system(system: str, *, base_url: str) -> bool:
    return (
        system == base_url
        or Identifier.all_objects.filter(system=system).exists()
        or Organization.objects.filter(identifier_system=system).exists()
    )


def _by_logical_id(value: str) -> tuple[Patient, list[IdentifierData]] | None:
    """``Patient/<id>`` on this server -> the live record and its identifiers."""
    raw = value.removeprefix("Patient/")
    try:
        uuid = UUID(raw)
    except ValueError:
        return None
    patient = Patient.all_objects.filter(uuid=uuid).first()
    if patient is None or patient.deleted_at is not None:
        return None
    patient = live_record(patient)
    if patient.deleted_at is not None:
        return None
    rows = Identifier.objects.filter(patient=patient, live=True).order_by("id")
    return patient, [IdentifierData(system=r.system, value=r.value, use=r.use, type=r.type) for r in rows]


def cross_reference(request: PixRequest, *, base_url: str) -> dict:
    """The ITI-83 response Parameters; OperationError for the spec's failure modes."""
    if not known_system(request.system, base_url=base_url):
        raise OperationError("sourceIdentifier Assigning Authority not found", code="code-invalid")
    unknown = [s for s in request.target_systems if not known_system(s, base_url=base_url)]
    if unknown:
        raise OperationError(
            "targetSystem not found", status=403, code="code-invalid", expression="targetSystem"
        )
    if request.system == base_url:
        found = _by_logical_id(request.value)
    else:
        resolution = resolve_identifier(request.system, request.value)
        found = resolution and (
            resolution.patient,
            [
                IdentifierData(system=i.system, value=i.value, use=i.use, type=i.type, assigner=i.assigner)
                for i in resolution.identifiers
            ],
        )
    if not found:
        raise OperationError("sourceIdentifier Patient Identifier not found", status=404, code="not-found")
    patient, identifiers = found
    wanted = set(request.target_systems)
    kept = tuple(
        i
        for i in identifiers
        if (i.system, i.value) != (request.system, request.value) and (not wanted or i.system in wanted)
    )
    # The foundation's Identifier mapping, through its public entry point.
    mapped = data_to_fhir(PatientData(identifiers=kept), id=patient.uuid, version=0, last_updated=None)
    entries = [value("targetIdentifier", "Identifier", i) for i in mapped.get("identifier", [])]
    entries.append(value("targetId", "Reference", {"reference": f"Patient/{patient.uuid}"}))
    return parameters(*entries)
