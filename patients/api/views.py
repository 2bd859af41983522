"""REST endpoints for patients: thin views over ``patients.services``.

Each action validates its input serializer, calls one service with the acting user and
a reason, and returns the read shape with an ETag (``W/"<version>"``). Errors become
the one error body of ``mpi.api``. A soft-deleted patient answers 410 Gone to every
action but ``restore`` and ``history`` (as FHIR does), so a client can tell "deleted"
from "never existed".
"""

from __future__ import annotations

import contextlib

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from mpi.access import note_access
from mpi.api import (
    BODY_ERRORS,
    ETAG_HEADER,
    IDEMPOTENCY_PARAMETER,
    IF_MATCH_PARAMETER,
    REASON_PARAMETER,
    Gone,
    PreconditionRequired,
    error_responses,
    etag,
    idempotent,
    parse_if_match,
    represent,
)
from patients.api.candidates import candidates_for
from patients.api.filters import PatientFilter
from patients.api.history import patient_versions
from patients.api.resolve import resolve_identifier
from patients.api.serializers import (
    PatientInputSerializer,
    PatientSerializer,
    PatientUpdateSerializer,
    ReasonInput,
    RegisteredPatientSerializer,
    ResolutionSerializer,
    ResolveQuerySerializer,
    VersionSerializer,
    to_patient_data,
    validate_patch,
)
from patients.children import one_with_children
from patients.data import clean_text
from patients.models import Patient
from patients.services import (
    delete_patient,
    patient_to_data,
    register_patient,
    restore_patient,
    update_patient,
)

UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

# Who may do what: Django model permissions, held through the role groups of
# patients/roles.py (integrator: view/add/change; steward: + delete, restore, history;
# auditor: view + history; clerk: as in the admin).
PERMISSIONS = {
    "list": "patients.view_patient",
    "retrieve": "patients.view_patient",
    "create": "patients.add_patient",
    "update": "patients.change_patient",
    "partial_update": "patients.change_patient",
    "destroy": "patients.delete_patient",
    "restore": "patients.restore_patient",
    "history": "patients.view_historicalpatient",
    "resolve": "patients.view_patient",
}


class HasActionPermission(permissions.BasePermission):
    """The action's permission from ``PERMISSIONS``; a refusal names what is missing."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 for unauthenticated requests
        if view.action is None:
            return True  # no handler for this method: the view answers 405
        # Other apps' viewsets bring their own table (search/api, matching/api).
        needed = getattr(view, "action_permissions", PERMISSIONS)[view.action]
        if request.user.has_perm(needed):
            return True
        self.message = f"Your role does not allow '{view.action}' here: it needs the permission {needed}."
        return False


def change_reason(request, body_reason: str | None = None) -> str:
    """The reason from the body, else the X-Change-Reason header (UTF-8 allowed)."""
    header = request.headers.get("X-Change-Reason", "")
    # WSGI hands headers over as latin-1; clients send UTF-8.
    with contextlib.suppress(UnicodeError):
        header = header.encode("latin-1").decode("utf-8")
    if len(header) > 1000 or any(ord(c) < 32 and c != "\t" for c in header):
        raise exceptions.ValidationError(
            {"X-Change-Reason": ["At most 1000 characters, no control characters."]}, code="invalid"
        )
    return clean_text(body_reason or header)


def expected_version(request, body_version: int | None) -> int:
    header = parse_if_match(request.headers.get("If-Match"))
    if header is not None and body_version is not None and header != body_version:
        raise exceptions.ValidationError(
            {"version": [f"The version field ({body_version}) and If-Match ({header}) disagree."]},
            code="invalid",
        )
    version = header if header is not None else body_version
    if version is None:
        raise PreconditionRequired()
    return version


WRITE_PARAMETERS = [IF_MATCH_PARAMETER, REASON_PARAMETER, ETAG_HEADER]


@extend_schema_view(
    list=extend_schema(
        summary="List patients", responses={200: PatientSerializer(many=True), **error_responses(400, 404)}
    ),
    retrieve=extend_schema(
        summary="Read a patient",
        parameters=[ETAG_HEADER],
        responses={200: PatientSerializer, **error_responses(404, 410)},
    ),
    create=extend_schema(
        summary="Register a patient with names, identifiers, addresses and contacts",
        parameters=[IDEMPOTENCY_PARAMETER, REASON_PARAMETER, ETAG_HEADER],
        request=PatientInputSerializer,
        responses={201: RegisteredPatientSerializer, **error_responses(*BODY_ERRORS, 409, 422)},
    ),
    update=extend_schema(
        summary="Replace a patient (send the version you read)",
        parameters=WRITE_PARAMETERS,
        request=PatientUpdateSerializer,
        responses={200: PatientSerializer, **error_responses(*BODY_ERRORS, 404, 409, 410, 412, 428)},
    ),
    partial_update=extend_schema(
        summary="Change some fields of a patient (lists are replaced whole)",
        parameters=WRITE_PARAMETERS,
        responses={200: PatientSerializer, **error_responses(*BODY_ERRORS, 404, 409, 410, 412, 428)},
    ),
    destroy=extend_schema(
        summary="Delete a patient (soft: a steward can restore it)",
        parameters=[IF_MATCH_PARAMETER, REASON_PARAMETER],
        responses={204: OpenApiResponse(description="Deleted."), **error_responses(400, 404, 409, 410, 412)},
    ),
)
class PatientViewSet(viewsets.GenericViewSet):
    queryset = Patient.objects.with_children().order_by("-updated_at", "-pk")
    serializer_class = PatientSerializer
    filterset_class = PatientFilter
    permission_classes = [HasActionPermission]
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    metadata_class = None  # no OPTIONS introspection: the OpenAPI schema describes the API

    def get_serializer_class(self):
        # For the OpenAPI schema; the actions name their serializers explicitly.
        return {
            "create": PatientInputSerializer,
            "update": PatientUpdateSerializer,
            "partial_update": PatientUpdateSerializer,
            "restore": ReasonInput,
            "history": VersionSerializer,
        }.get(self.action, PatientSerializer)

    def get_object(self, *, children: bool = True) -> Patient:
        if children:
            patient = one_with_children(uuid=self.kwargs["id"])
        else:
            patient = Patient.all_objects.filter(uuid=self.kwargs["id"]).first()
        if patient is None:
            raise exceptions.NotFound("No patient with this id.")
        if patient.deleted_at is not None and self.action not in ("restore", "history"):
            raise Gone(
                f"The patient was deleted at {patient.deleted_at.isoformat()}; a steward can restore it."
            )
        return patient

    def _respond(
        self, patient: Patient, *, serializer=PatientSerializer, code=status.HTTP_200_OK, reload=True, **extra
    ):
        if reload:  # after a write: the stored state, children included
            patient = one_with_children(pk=patient.pk)
        for name, value in extra.items():
            setattr(patient, name, value)
        headers = {"ETag": etag(patient.version)}
        if code == status.HTTP_201_CREATED:
            headers["Location"] = self.request.build_absolute_uri(
                reverse("patient-detail", args=[patient.uuid])
            )
        return Response(represent(serializer, patient), status=code, headers=headers)

    def list(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        note_access(request, "search", [p.uuid for p in page], query=request.META.get("QUERY_STRING", ""))
        return self.get_paginated_response([represent(PatientSerializer, p) for p in page])

    def retrieve(self, request, id=None):
        patient = self.get_object()
        note_access(request, "read", [patient.uuid])
        return self._respond(patient, reload=False)

    @idempotent
    def create(self, request):
        serializer = PatientInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        patient = register_patient(
            data=to_patient_data(values),
            actor=request.user,
            reason=change_reason(request, values.get("reason")),
        )
        return self._respond(
            patient,
            serializer=RegisteredPatientSerializer,
            code=status.HTTP_201_CREATED,
            candidates=candidates_for(patient),
        )

    def update(self, request, id=None):
        patient = self.get_object()
        serializer = PatientUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        return self._save(patient, to_patient_data(values), values)

    def partial_update(self, request, id=None):
        patient = self.get_object()
        values = validate_patch(request.data)
        return self._save(patient, to_patient_data(values, base=patient_to_data(patient)), values)

    def _save(self, patient, data, values):
        version = expected_version(self.request, values.get("version"))
        patient = update_patient(
            patient=patient,
            data=data,
            expected_version=version,
            actor=self.request.user,
            reason=change_reason(self.request, values.get("reason")),
        )
        return self._respond(patient)

    def destroy(self, request, id=None):
        patient = self.get_object(children=False)
        version = parse_if_match(request.headers.get("If-Match"))
        delete_patient(
            patient=patient, actor=request.user, reason=change_reason(request), expected_version=version
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Restore a deleted patient",
        parameters=[IDEMPOTENCY_PARAMETER, REASON_PARAMETER, ETAG_HEADER],
        request=ReasonInput,
        responses={200: PatientSerializer, **error_responses(*BODY_ERRORS, 404, 409, 422)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def restore(self, request, id=None):
        patient = self.get_object(children=False)
        serializer = ReasonInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = change_reason(request, serializer.validated_data.get("reason"))
        return self._respond(restore_patient(patient=patient, actor=request.user, reason=reason))

    @extend_schema(
        summary="A patient's versions: who, when, why and what changed (newest first)",
        responses={200: VersionSerializer(many=True), **error_responses(404)},
        filters=False,
    )
    @action(detail=True, methods=["get"])
    def history(self, request, id=None):
        patient = self.get_object(children=False)
        page = self.paginate_queryset(patient_versions(patient))
        note_access(request, "history", [patient.uuid])
        return self.get_paginated_response(VersionSerializer(page, many=True).data)


class IdentifierViewSet(viewsets.GenericViewSet):
    serializer_class = ResolutionSerializer
    permission_classes = [HasActionPermission]
    metadata_class = None
    pagination_class = None

    @extend_schema(
        summary="Resolve an identifier to the live patient holding it (PIX cross-reference)",
        parameters=[ResolveQuerySerializer],
        responses={200: ResolutionSerializer, **error_responses(400, 404, 409)},
    )
    @action(detail=False, methods=["get"])
    def resolve(self, request):
        query = ResolveQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        system, value = query.validated_data["system"], query.validated_data["value"]
        resolution = resolve_identifier(system, value)
        if resolution is None:
            raise exceptions.NotFound(f"No live patient holds the identifier {system}|{value}.")
        involved = [resolution.patient.uuid, *(p.uuid for p in resolution.via)]
        note_access(request, "resolve", involved, query=f"{system}|{value}")
        return Response(
            ResolutionSerializer(resolution).data, headers={"ETag": etag(resolution.patient.version)}
        )
