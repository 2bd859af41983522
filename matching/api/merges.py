"""REST endpoints of merges: merge two patients (or preview it), list, read, unmerge.

Thin views over matching/merging.py. A merge or unmerge the services refuse is a 409
(``merge-conflict``, with every reason in ``conflicts``); a version that moved since the
caller read it is a 412 naming ``survivor_version`` or ``duplicate_version``.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from matching.api.filters import MergeFilter
from matching.api.serializers import MergeChoicesInput, MergeInput, MergeSerializer
from matching.merging import merge_patients, unmerge_patients
from matching.models import Merge
from mpi.access import note_access
from mpi.api import BODY_ERRORS, IDEMPOTENCY_PARAMETER, REASON_PARAMETER, error_responses, idempotent
from patients.api.serializers import ReasonInput
from patients.api.views import UUID_PATTERN, HasActionPermission, change_reason
from patients.models import Patient

MERGE = "matching.merge_patients"
VIEW_MERGE = "matching.view_merge"


def _patient(uuid, field: str) -> Patient:
    patient = Patient.all_objects.filter(uuid=uuid).first()
    if patient is None:
        raise exceptions.ValidationError({field: [f"No patient with the id {uuid}."]}, code="not-found")
    return patient


@extend_schema_view(
    list=extend_schema(
        summary="List merges (newest first)",
        responses={200: MergeSerializer(many=True), **error_responses(400, 404)},
    ),
    retrieve=extend_schema(
        summary="Read a merge: who, when, why and what it changed",
        responses={200: MergeSerializer, **error_responses(404)},
    ),
    create=extend_schema(
        summary="Merge a duplicate into a survivor (or preview what it would do)",
        parameters=[IDEMPOTENCY_PARAMETER, REASON_PARAMETER],
        request=MergeInput,
        responses={
            200: MergeSerializer,
            201: MergeSerializer,
            **error_responses(*BODY_ERRORS, 409, 412, 422),
        },
    ),
)
class MergeViewSet(viewsets.GenericViewSet):
    queryset = Merge.objects.select_related("survivor", "duplicate", "actor", "unmerged_by").order_by(
        "-created_at", "-id"
    )
    serializer_class = MergeSerializer
    filterset_class = MergeFilter
    permission_classes = [HasActionPermission]
    action_permissions = {"list": VIEW_MERGE, "retrieve": VIEW_MERGE, "create": MERGE, "unmerge": MERGE}
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    metadata_class = None

    def get_serializer_class(self):
        return {"create": MergeInput, "unmerge": ReasonInput}.get(self.action, MergeSerializer)

    def get_object(self) -> Merge:
        merge = self.get_queryset().filter(uuid=self.kwargs["id"]).first()
        if merge is None:
            raise exceptions.NotFound("No merge with this id.")
        return merge

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        shown = [p.uuid for m in page for p in (m.survivor, m.duplicate)]
        note_access(request, "search", shown, query=request.META.get("QUERY_STRING", ""))
        return self.get_paginated_response(MergeSerializer(page, many=True).data)

    def retrieve(self, request, id=None):
        merge = self.get_object()
        note_access(request, "read", [merge.survivor.uuid, merge.duplicate.uuid])
        return Response(MergeSerializer(merge).data)

    @idempotent
    def create(self, request):
        serializer = MergeInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        merge = merge_patients(
            survivor=_patient(values["survivor"], "survivor"),
            duplicate=_patient(values["duplicate"], "duplicate"),
            actor=request.user,
            reason=change_reason(request, values.get("reason")),
            choices=MergeChoicesInput.to_choices(values.get("choices")),
            survivor_version=values.get("survivor_version"),
            duplicate_version=values.get("duplicate_version"),
            preview=values["preview"],
        )
        if values["preview"]:
            pair = [merge.survivor.uuid, merge.duplicate.uuid]
            note_access(request, "read", pair, detail={"preview": True})
            return Response(MergeSerializer(merge).data)
        merge = self.get_queryset().get(pk=merge.pk)
        location = request.build_absolute_uri(reverse("merge-detail", args=[merge.uuid]))
        return Response(
            MergeSerializer(merge).data, status=status.HTTP_201_CREATED, headers={"Location": location}
        )

    @extend_schema(
        summary="Undo a merge: both records as before, the duplicate live again",
        parameters=[IDEMPOTENCY_PARAMETER, REASON_PARAMETER],
        request=ReasonInput,
        responses={200: MergeSerializer, **error_responses(*BODY_ERRORS, 404, 409, 422)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def unmerge(self, request, id=None):
        merge = self.get_object()
        serializer = ReasonInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = change_reason(request, serializer.validated_data.get("reason"))
        unmerge_patients(merge=merge, actor=request.user, reason=reason)
        return Response(MergeSerializer(self.get_queryset().get(pk=merge.pk)).data)
