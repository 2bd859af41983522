"""``Patient/$merge`` (FHIR R5, offered on R4) and our ``Patient/$unmerge``: input reading.

http://hl7.org/fhir/R5/patient-operation-merge.html. The source (the duplicate) and the
target (the survivor) are named by a reference (``Patient/<id>``, optionally
``Patient/<id>/_history/<version>`` to say which version the client saw) or by
identifiers, which must all be held by one live patient. ``result-patient`` becomes
``MergeChoices`` (fhir_api/operations/survivorship.py). The services do the rest:
``matching.merging.merge_patients`` / ``unmerge_patients``.

Statuses (R5: 400 input errors, 422 business rules): a source or target that does not
resolve to exactly one live patient, a merge the service refuses (into itself, already
merged, deleted), a result-patient no choice can produce: 422. A version that moved: 412.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from fhir_api.errors import FhirError
from fhir_api.mapping import patient_from_fhir
from fhir_api.operations.parameters import Issue, OperationError, OperationInput
from matching.merging import MergeChoices
from matching.models import Merge, MergeStatus
from patients.codes import LinkType
from patients.data import clean_text, whole_number
from patients.models import Identifier, Link, Patient
from patients.queries import load_patient_data

MERGE_PARAMETERS = (
    "source-patient",
    "source-patient-identifier",
    "target-patient",
    "target-patient-identifier",
    "result-patient",
    "preview",
    "reason",
)
UNMERGE_PARAMETERS = (
    "source-patient",
    "source-patient-identifier",
    "target-patient",
    "target-patient-identifier",
    "merge",
    "reason",
)
_REFERENCE = re.compile(
    r"^(?:(?P<base>.+)/)?Patient/(?P<id>[0-9a-fA-F-]{32,36})(?:/_history/(?P<version>[0-9]+))?$"
)


@dataclass(frozen=True)
class Resolved:
    patient: Patient
    version: int | None  # the version the client named, if it did
    given_by: str  # FHIRPath of the parameter(s) that named it


def embedded(fn, resource: dict, prefix: str, **kwargs):
    """Run a foundation mapper on a resource inside Parameters, re-rooting the FHIRPath of
    its issues from ``Patient.x`` to ``Parameters.parameter[i].resource.x``."""
    try:
        return fn(resource, **kwargs)
    except FhirError as exc:
        for item in exc.issues or []:
            item["expression"] = [_reroot(e, prefix) for e in item.get("expression") or []]
        exc.expression = [_reroot(e, prefix) for e in exc.expression or []]
        raise


def _reroot(expression: str, prefix: str) -> str:
    if expression == "Patient" or expression.startswith("Patient."):
        return prefix + expression[len("Patient") :]
    return f"{prefix}.{expression}"


def _by_reference(reference: dict, path: str, base_url: str) -> tuple[Patient, int | None]:
    text = reference.get("reference")
    if not text:
        raise OperationError(
            "The Reference has no 'reference' (Patient/<id>).", code="required", expression=path
        )
    match = _REFERENCE.match(text.strip())
    if not match:
        raise OperationError(f"{text!r} is not a Patient reference (Patient/<id>).", expression=path)
    if match["base"] and match["base"].rstrip("/") != base_url.rstrip("/"):
        raise OperationError(
            f"{text!r} is not a patient of this server ({base_url}).",
            status=422,
            code="not-found",
            expression=path,
        )
    try:
        uuid = UUID(match["id"])
    except ValueError:
        raise OperationError(
            f"{text!r} is not a Patient reference (Patient/<id>).", expression=path
        ) from None
    version = None
    if match["version"]:
        version = whole_number(match["version"])
        if version is None:  # int() refuses 4,300+ digits; no version here has 19
            raise OperationError(
                "The version in the reference is not one this server writes (at most 18 digits).",
                expression=path,
            )
    patient = Patient.all_objects.filter(uuid=uuid).first()
    if patient is None:
        raise OperationError(f"There is no Patient/{uuid}.", status=422, code="not-found", expression=path)
    return patient, version


def _by_identifiers(identifiers: list[tuple[dict, str]], role: str) -> Patient:
    """The one live patient holding every identifier (system optional, value required)."""
    holders: set[int] | None = None
    for ident, path in identifiers:
        value, system = clean_text(ident.get("value")), clean_text(ident.get("system"))
        if not value:
            raise OperationError("The Identifier has no value.", code="required", expression=f"{path}.value")
        rows = Identifier.objects.filter(value=value, live=True, patient__deleted_at__isnull=True)
        if system:
            rows = rows.filter(system=system)
        found = set(rows.values_list("patient_id", flat=True))
        label = f"{system}|{value}" if system else f"value {value!r} (any system)"
        if not found:
            raise OperationError(
                f"No live patient holds the {role} identifier {label}.",
                status=422,
                code="not-found",
                expression=path,
            )
        holders = found if holders is None else holders & found
        if not holders:
            raise OperationError(
                f"The {role} identifiers are held by different patients; they must all name one record.",
                status=422,
                code="multiple-matches",
                expression=path,
            )
    assert holders is not None
    if len(holders) > 1:
        uuids = ", ".join(
            f"Patient/{u}"
            for u in Patient.objects.filter(pk__in=holders).order_by("pk").values_list("uuid", flat=True)
        )
        raise OperationError(
            f"The {role} identifiers match {len(holders)} patients ({uuids}); give a system or a reference.",
            status=422,
            code="multiple-matches",
            expression=identifiers[0][1],
        )
    return Patient.objects.get(pk=holders.pop())


def resolve(params: OperationInput, role: str, *, base_url: str, required: bool = True) -> Resolved | None:
    """The patient named by ``<role>-patient`` or ``<role>-patient-identifier``."""
    reference = params.reference(f"{role}-patient")
    identifiers = params.identifiers(f"{role}-patient-identifier")
    if reference and identifiers:
        raise OperationError(
            f"Give {role}-patient or {role}-patient-identifier, not both.",
            expression=identifiers[0][1],
        )
    if reference:
        value, path = reference
        if not value.get("reference") and value.get("identifier"):
            # A Reference may carry an identifier instead (R5: "this may include an identifier").
            return Resolved(_by_identifiers([(value["identifier"], f"{path}.identifier")], role), None, path)
        patient, version = _by_reference(value, path, base_url)
        return Resolved(patient, version, path)
    if identifiers:
        return Resolved(_by_identifiers(identifiers, role), None, identifiers[0][1])
    if required:
        raise OperationError(
            f"Name the {role} patient with {role}-patient (a Reference) or {role}-patient-identifier.",
            code="required",
        )
    return None


def read_reason(params: OperationInput, header: str) -> str:
    """The ``reason`` parameter, else the X-Change-Reason header (as the REST API)."""
    given = params.string("reason")
    return clean_text(given[0] if given else header)


@dataclass(frozen=True)
class MergeRequest:
    source: Resolved
    target: Resolved
    choices: MergeChoices | None
    preview: bool
    reason: str
    target_version: int | None


def _merge_links(patient: Patient) -> set[tuple[str, UUID]]:
    return {
        (link_type, other)
        for link_type, other in Link.all_objects.filter(
            patient=patient, type__in=[LinkType.REPLACES, LinkType.REPLACED_BY]
        ).values_list("type", "other__uuid")
    }


def read_merge(params: OperationInput, *, base_url: str, header_reason: str) -> MergeRequest:
    from fhir_api.operations.survivorship import choices_from_result

    params.reject_unknown(MERGE_PARAMETERS)
    preview = params.boolean("preview")
    source = resolve(params, "source", base_url=base_url)
    target = resolve(params, "target", base_url=base_url)
    if source.patient.pk == target.patient.pk:
        raise OperationError(
            f"The source and the target are the same record, Patient/{target.patient.uuid}: a record "
            "cannot be merged into itself (after a merge, the source's identifiers name the target).",
            status=422,
            code="business-rule",
            expression=source.given_by,
        )
    reason = read_reason(params, header_reason)
    if not reason and preview:
        reason = "FHIR $merge preview"  # nothing is written, so nothing records it
    if not reason:
        raise OperationError(
            "Say why: a 'reason' parameter (valueString) or an X-Change-Reason header. Every merge is "
            "recorded with its reason.",
            code="required",
            expression="Parameters.parameter.where(name = 'reason')",
        )
    target_version = target.version
    choices = None
    result = params.resource("result-patient", "Patient")
    if result is not None:
        resource, path = result
        if resource.get("id") and resource["id"] != str(target.patient.uuid):
            raise OperationError(
                f"result-patient.id must be the target's id ({target.patient.uuid}).",
                expression=f"{path}.id",
            )
        version_id = (resource.get("meta") or {}).get("versionId")
        if version_id is not None:
            version = whole_number(str(version_id))
            if version is None:
                raise OperationError(
                    "meta.versionId must be a version number.", expression=f"{path}.meta.versionId"
                )
            if target_version is not None and version != target_version:
                raise OperationError(
                    f"result-patient.meta.versionId ({version_id}) and the target-patient reference's "
                    f"version ({target_version}) disagree.",
                    expression=f"{path}.meta.versionId",
                )
            target_version = version
        allowed = _merge_links(target.patient) | {(LinkType.REPLACES, source.patient.uuid)}
        data = embedded(patient_from_fhir, resource, path, allowed_merge_links=allowed)
        stored = load_patient_data([target.patient.pk, source.patient.pk], include_deleted=True)
        if len(stored) == 2:
            choices = choices_from_result(
                data,
                target=stored[target.patient.pk],
                source=stored[source.patient.pk],
                source_uuid=source.patient.uuid,
                prefix=path,
            )
    return MergeRequest(source, target, choices, preview, reason, target_version)


def merge_summary(merge: Merge, *, preview: bool) -> Issue:
    """The information issue of a successful (or previewed) merge: what moved."""
    changes = merge.changes
    moved = len(changes.get("identifiers_moved", []))
    copied = len(changes.get("copied", []))
    scalars = sorted(changes.get("scalars", {}))
    what = (
        f"{moved} identifier(s) moved to the target, {copied} name/address/telecom row(s) copied"
        + (f", {', '.join(scalars)} taken from the source" if scalars else "")
        + "; the source is inactive with a replaced-by link."
    )
    source, target = merge.duplicate.uuid, merge.survivor.uuid
    if preview:
        return Issue(
            "Preview only: nothing was written. "
            f"Merging Patient/{source} into Patient/{target} would: {what}",
            code="informational",
            severity="information",
        )
    return Issue(
        f"Merged Patient/{source} into Patient/{target} (merge {merge.uuid}): {what}",
        code="informational",
        severity="information",
    )


def _merges_moving(identifiers: list[tuple[dict, str]]) -> list[Merge]:
    """Standing merges that moved every one of these identifiers (system optional): after a
    merge the source's identifiers belong to the target, so they name the source only
    through the merge record."""
    merges = Merge.objects.filter(status=MergeStatus.MERGED)
    for ident, path in identifiers:
        value, system = clean_text(ident.get("value")), clean_text(ident.get("system"))
        if not value:
            raise OperationError("The Identifier has no value.", code="required", expression=f"{path}.value")
        wanted = {"value": value, **({"system": system} if system else {})}
        merges = merges.filter(changes__identifiers_moved__contains=[{"values": wanted}])
    return list(merges.select_related("survivor", "duplicate").order_by("created_at", "pk"))


def find_merge(params: OperationInput, *, base_url: str) -> Merge:
    """The standing merge an ``$unmerge`` names: by ``merge`` (its id), or by the source
    (the merged-away record) by reference or by the identifiers the merge moved;
    optionally checked against the target."""
    params.reject_unknown(UNMERGE_PARAMETERS)
    by_id = params.string("merge")
    reference = params.reference("source-patient")
    identifiers = params.identifiers("source-patient-identifier")
    target = resolve(params, "target", base_url=base_url, required=False)
    if sum(map(bool, (by_id, reference, identifiers))) > 1:
        raise OperationError("Name the merge once: merge, source-patient or source-patient-identifier.")
    if by_id:
        value, path = by_id
        try:
            merge = Merge.objects.filter(uuid=UUID(value)).select_related("survivor", "duplicate").first()
        except ValueError:
            raise OperationError(f"{value!r} is not a merge id (a UUID).", expression=path) from None
        if merge is None:
            raise OperationError(f"There is no merge {value}.", status=422, code="not-found", expression=path)
    elif reference:
        source = resolve(params, "source", base_url=base_url)
        merge = (
            Merge.objects.filter(duplicate=source.patient, status=MergeStatus.MERGED)
            .select_related("survivor", "duplicate")
            .first()
        )
        if merge is None:
            raise OperationError(
                f"Patient/{source.patient.uuid} is not merged into another record (name the merged-away "
                "record as the source, or give the merge id).",
                status=422,
                code="business-rule",
                expression=source.given_by,
            )
    elif identifiers:
        found = _merges_moving(identifiers)
        if not found:
            raise OperationError(
                "No standing merge moved these identifiers: the record holding them was not merged away.",
                status=422,
                code="not-found",
                expression=identifiers[0][1],
            )
        if len(found) > 1:
            listed = ", ".join(
                f"{m.uuid} (Patient/{m.duplicate.uuid} into Patient/{m.survivor.uuid})" for m in found
            )
            raise OperationError(
                f"These identifiers were moved by {len(found)} standing merges: {listed}; give the merge id.",
                status=422,
                code="multiple-matches",
                expression=identifiers[0][1],
            )
        merge = found[0]
    else:
        raise OperationError(
            "Name the merge: 'merge' (its id) or the merged-away record as source-patient / "
            "source-patient-identifier.",
            code="required",
        )
    if target is not None and merge.survivor_id != target.patient.pk:
        raise OperationError(
            f"Patient/{merge.duplicate.uuid} was merged into Patient/{merge.survivor.uuid}, not "
            f"Patient/{target.patient.uuid}.",
            status=422,
            code="business-rule",
            expression=target.given_by,
        )
    return merge
