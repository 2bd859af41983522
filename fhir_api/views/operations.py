"""The MPI operations on Patient: $match, $merge, $unmerge, $ihe-pix; and their definitions.

Thin views: read the Parameters (fhir_api/operations/*), call the services of
``matching`` and ``patients``, answer Parameters or a Bundle. Errors are OperationOutcomes
(``FhirView``); a merge or unmerge the service refuses is a 422 listing every reason,
as R5 $merge prescribes for business rules. docs/fhir.md, "Operations".
"""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.urls import path, re_path
from rest_framework import exceptions

from fhir_api import capability
from fhir_api.errors import FhirError
from fhir_api.mapping import full_url, patients_to_fhir
from fhir_api.operations import definitions, match, merge, pix
from fhir_api.operations.parameters import (
    Issue,
    OperationError,
    outcome,
    parameters,
    parse_parameters,
    query_parameters,
    resource,
)
from fhir_api.views.base import PUBLIC, FhirView, fhir_base_url, fhir_response
from matching.merging import MergeError, merge_patients, unmerge_patients
from mpi.access import note_access, request_query
from mpi.api import etag
from mpi.db import replica_reads
from patients.api.views import change_reason
from patients.errors import VersionConflict

MERGE_PERMISSION = "matching.merge_patients"
VIEW_PERMISSION = "patients.view_patient"
EVIDENCE_PATH = "StructureDefinition/match-evidence"


def _parameters_body(request):
    if not isinstance(request.data, dict) or not request.data:
        raise FhirError(400, "structure", "POST a Parameters resource (application/fhir+json).")
    return parse_parameters(request.data)


def _refused(exc: MergeError) -> OperationError:
    return OperationError(
        status=422, issues=[Issue(reason, code="business-rule") for reason in exc.conflicts or (exc.message,)]
    )


def _stale(exc: VersionConflict, request: merge.MergeRequest) -> FhirError:
    side = request.source if exc.field == "duplicate_version" else request.target
    role = "source" if side is request.source else "target"
    return FhirError(
        412,
        "conflict",
        f"The {role} Patient/{side.patient.uuid} is at version {exc.current}, not {exc.expected}: it changed "
        "since you read it. Read it again and repeat the merge.",
        expression=[side.given_by],
        headers={"ETag": etag(exc.current)},
    )


def _patient(pk: int) -> dict:
    return patients_to_fhir([pk])[0]


class MatchView(FhirView):
    permissions = {"POST": VIEW_PERMISSION}

    def get(self, request):
        raise FhirError(
            405,
            "not-supported",
            "$match takes a Patient resource, which a GET cannot carry: POST a Parameters resource with "
            "'resource' (a Patient), and optionally 'onlyCertainMatches' and 'count'.",
        )

    def post(self, request):
        wanted = match.read_input(_parameters_body(request))
        probe = match.probe_from_fhir(wanted.patient, wanted.expression)
        with replica_reads():
            outcomes, version = match.run_match(probe, wanted)
        # A probe that forms no block finds nobody: only an empty answer can be thin.
        thin = None if outcomes else match.thin_probe_issue(probe)
        note_access(request, "match", [o.patient_uuid for o in outcomes], query=request_query(request))
        base = fhir_base_url(request)
        mapped = patients_to_fhir([o.patient_id for o in outcomes])
        bundle = match.match_bundle(
            outcomes,
            resources={UUID(r["id"]): r for r in mapped},
            full_url=lambda uuid: full_url(base, uuid),
            evidence_url=f"{base}/{EVIDENCE_PATH}",
            model_version=version,
            issues=[thin] if thin else [],
        )
        return fhir_response(bundle)


class MergeView(FhirView):
    permissions = {"POST": MERGE_PERMISSION}

    def post(self, request):
        params = _parameters_body(request)
        wanted = merge.read_merge(
            params, base_url=fhir_base_url(request), header_reason=change_reason(request)
        )
        arguments = {
            "survivor": wanted.target.patient,
            "duplicate": wanted.source.patient,
            "actor": request.user,
            "reason": wanted.reason,
            "choices": wanted.choices,
            "survivor_version": wanted.target_version,
            "duplicate_version": wanted.source.version,
        }
        try:
            if wanted.preview:
                # merge_patients(preview=True) rolls back before the survivor can be read;
                # this is the same merge in a transaction rolled back after reading it,
                # so 'result' is exactly the would-be target.
                with transaction.atomic():
                    done = merge_patients(**arguments)
                    result = _patient(done.survivor_id)
                    transaction.set_rollback(True)
                result.pop("meta", None)  # not committed: no version, no lastUpdated (R5)
                pair = [wanted.target.patient.uuid, wanted.source.patient.uuid]
                note_access(request, "read", pair, detail={"merge-preview": True})
            else:
                done = merge_patients(**arguments)
                result = _patient(done.survivor_id)
        except MergeError as exc:
            raise _refused(exc) from exc
        except VersionConflict as exc:
            raise _stale(exc, wanted) from exc
        body = parameters(
            resource("input", request.data),
            resource("outcome", outcome(merge.merge_summary(done, preview=wanted.preview))),
            resource("result", result),
        )
        return fhir_response(body)


class UnmergeView(FhirView):
    permissions = {"POST": MERGE_PERMISSION}

    def post(self, request):
        params = _parameters_body(request)
        found = merge.find_merge(params, base_url=fhir_base_url(request))
        reason = merge.read_reason(params, change_reason(request))
        if not reason:
            raise OperationError(
                "Say why: a 'reason' parameter (valueString) or an X-Change-Reason header.", code="required"
            )
        try:
            done = unmerge_patients(merge=found, actor=request.user, reason=reason)
        except MergeError as exc:
            raise _refused(exc) from exc
        survivor, source = patients_to_fhir([done.survivor_id, done.duplicate_id])
        summary = Issue(
            f"Unmerged Patient/{done.duplicate.uuid} from Patient/{done.survivor.uuid} (merge {done.uuid}): "
            "both records are as they were before the merge.",
            code="informational",
            severity="information",
        )
        body = parameters(
            resource("input", request.data),
            resource("outcome", outcome(summary)),
            resource("result", survivor),
            resource("source", source),
        )
        return fhir_response(body)


class PixView(FhirView):
    permissions = {"GET": VIEW_PERMISSION, "POST": VIEW_PERMISSION}

    def get(self, request):
        params = query_parameters(dict(request.query_params.lists()), pix.QUERY_TYPES)
        return self._answer(request, params)

    def post(self, request):
        return self._answer(request, _parameters_body(request))

    def _answer(self, request, params):
        wanted = pix.read_input(params)
        answer = pix.cross_reference(wanted, base_url=fhir_base_url(request))
        found = [
            p["valueReference"]["reference"].rsplit("/", 1)[-1]
            for p in answer.get("parameter", [])
            if p.get("name") == "targetId"
        ]
        note_access(request, "resolve", found, query=request_query(request))
        return fhir_response(answer)


class OperationDefinitionView(FhirView):
    permissions = {"GET": PUBLIC}

    def get(self, request, id: str):
        definition = definitions.operation_definition(id, base_url=fhir_base_url(request))
        if definition is None:
            known = ", ".join(definitions.DEFINITIONS)
            raise exceptions.NotFound(f"No OperationDefinition/{id}; this server defines: {known}.")
        return fhir_response(definition)


capability.register_operation(
    "match", definitions.MATCH, "Probabilistic match with grades and per-field evidence (match-evidence)."
)
capability.register_operation(
    "merge", definitions.MERGE, "R5 $merge on R4: source into target, preview, result-patient; stewards."
)
capability.register_operation(
    "unmerge", "OperationDefinition/Patient-unmerge", "Undo a merge exactly (ours); stewards."
)
capability.register_operation(
    "ihe-pix", definitions.PIX, "IHE PIXm ITI-83 identifier cross-reference, following merges."
)

urlpatterns = [
    path("Patient/$match", MatchView.as_view(), name="fhir-patient-match"),
    path("Patient/$merge", MergeView.as_view(), name="fhir-patient-merge"),
    path("Patient/$unmerge", UnmergeView.as_view(), name="fhir-patient-unmerge"),
    path("Patient/$ihe-pix", PixView.as_view(), name="fhir-patient-ihe-pix"),
    re_path(
        r"^OperationDefinition/(?P<id>[A-Za-z0-9\-.]{1,64})$",
        OperationDefinitionView.as_view(),
        name="fhir-operation-definition",
    ),
]
