"""REST endpoints of matching: match a probe, the candidate queue and its decisions.

Thin views over the steward services (matching/services.py, merging.py, claims.py):
the same functions, in the same order, as the steward pages (matching/views/).
"""

from __future__ import annotations

from dataclasses import replace

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from matching.api.filters import CandidateFilter
from matching.api.serializers import (
    DecisionInput,
    DecisionSerializer,
    MatchCandidateSerializer,
    MatchInputSerializer,
    MatchResponseSerializer,
    MergeChoicesInput,
)
from matching.claims import claim_candidate, queue_order, release_claim
from matching.merging import link_patients, merge_patients
from matching.models import MatchCandidate
from matching.services import active_matcher, dismiss_candidate, mark_not_duplicate, match_patient
from mpi.access import note_access, request_query
from mpi.api import BODY_ERRORS, IDEMPOTENCY_PARAMETER, REASON_PARAMETER, error_responses, idempotent
from mpi.db import replica_reads
from patients.api.serializers import to_patient_data
from patients.api.views import UUID_PATTERN, HasActionPermission, change_reason
from patients.data import NameData, PatientData, clean_patient_data
from patients.models import Patient

REVIEW = "matching.review_candidate"
MERGE = "matching.merge_patients"
# Link needs a reason in the service; the steward page supplies this one when left empty.
LINK_REASON = "Same person, both records kept (steward review)."


# --- Match -----------------------------------------------------------------------------


def clean_probe(data: PatientData) -> PatientData:
    """The probe normalised as a registration would be, or a 400 naming the field.

    Unlike a registration, a probe may have no name (an identifier or a phone can find
    the person); the cleaner insists on one, so a nameless probe borrows a blank-free
    placeholder for the check and drops it after.
    """
    thin = not any(n.family or n.given or n.text for n in data.names)
    if thin and not data.identifiers and not data.birth_date:
        raise exceptions.ValidationError(
            "The probe is too thin to match: give at least a name, an identifier or a birth date.",
            code="probe-too-thin",
        )
    if data.names:
        return clean_patient_data(data)
    cleaned = clean_patient_data(replace(data, names=(NameData(text="probe"),)))
    return replace(cleaned, names=())


class MatchViewSet(viewsets.GenericViewSet):
    permission_classes = [HasActionPermission]
    action_permissions = {"create": "patients.view_patient"}
    serializer_class = MatchInputSerializer
    pagination_class = None
    metadata_class = None

    @extend_schema(
        summary="Match a probe patient against the registry (writes nothing)",
        request=MatchInputSerializer,
        responses={200: MatchResponseSerializer, **error_responses(*BODY_ERRORS)},
    )
    def create(self, request):
        serializer = MatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        limit, min_grade = values.pop("limit"), values.pop("min_grade")
        probe = clean_probe(to_patient_data(values))
        matcher = active_matcher()
        version = matcher[0]
        with replica_reads():
            outcomes = match_patient(probe, limit=limit, min_grade=min_grade, matcher=matcher)
        note_access(request, "match", [o.patient_uuid for o in outcomes], query=request_query(request))
        body = {"model_version": version.version, "results": outcomes}
        return Response(MatchResponseSerializer(body).data)


# --- Candidates ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="List duplicate candidates (most likely first)",
        responses={200: MatchCandidateSerializer(many=True), **error_responses(400, 404)},
    ),
    retrieve=extend_schema(
        summary="Read a candidate with its per-field evidence",
        responses={200: MatchCandidateSerializer, **error_responses(404)},
    ),
)
class CandidateViewSet(viewsets.GenericViewSet):
    queryset = MatchCandidate.objects.select_related(
        "patient_a", "patient_b", "model_version", "decided_by", "claimed_by"
    ).order_by(*queue_order())
    serializer_class = MatchCandidateSerializer
    filterset_class = CandidateFilter
    permission_classes = [HasActionPermission]
    action_permissions = {"list": REVIEW, "retrieve": REVIEW, "decide": REVIEW}
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    metadata_class = None

    def get_serializer_class(self):
        return DecisionInput if self.action == "decide" else MatchCandidateSerializer

    def get_object(self) -> MatchCandidate:
        candidate = self.get_queryset().filter(uuid=self.kwargs["id"]).first()
        if candidate is None:
            raise exceptions.NotFound("No candidate with this id.")
        return candidate

    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        shown = [p.uuid for c in page for p in (c.patient_a, c.patient_b)]
        note_access(request, "search", shown, query=request.META.get("QUERY_STRING", ""))
        return self.get_paginated_response(MatchCandidateSerializer(page, many=True).data)

    def retrieve(self, request, id=None):
        candidate = self.get_object()
        note_access(request, "read", [candidate.patient_a.uuid, candidate.patient_b.uuid])
        return Response(MatchCandidateSerializer(candidate).data)

    @extend_schema(
        summary="Decide a candidate: merge, link, not-duplicate or dismiss",
        parameters=[IDEMPOTENCY_PARAMETER, REASON_PARAMETER],
        request=DecisionInput,
        responses={200: DecisionSerializer, **error_responses(*BODY_ERRORS, 404, 409, 412, 422)},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def decide(self, request, id=None):
        candidate = self.get_object()
        serializer = DecisionInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        decision = values["decision"]
        if decision == "merge" and not request.user.has_perm(MERGE):
            raise exceptions.PermissionDenied(
                f"Your role does not allow the decision 'merge' here: it needs the permission {MERGE}."
            )
        reason = change_reason(request, values.get("reason"))
        # As on the steward page: claim first, so a pair another steward is reviewing, or
        # one decided meanwhile, is refused clearly (409) before anything is written.
        claim_candidate(candidate=candidate, actor=request.user)
        try:
            merge = self._apply(candidate, decision, values, reason)
        finally:
            release_claim(candidate=candidate, actor=request.user)
        decided = self.get_queryset().get(pk=candidate.pk)
        decided.merge = merge.uuid if merge is not None else None
        return Response(DecisionSerializer(decided).data)

    def _apply(self, candidate: MatchCandidate, decision: str, values: dict, reason: str):
        actor = self.request.user
        if decision == "not-duplicate":
            mark_not_duplicate(candidate=candidate, actor=actor, reason=reason)
        elif decision == "dismiss":
            dismiss_candidate(candidate=candidate, actor=actor, reason=reason)
        elif decision == "link":
            link_patients(
                patient=candidate.patient_a,
                other=candidate.patient_b,
                actor=actor,
                reason=reason or LINK_REASON,
            )
        else:
            survivor, duplicate = self._survivor(candidate, values.get("survivor"))
            return merge_patients(
                survivor=survivor,
                duplicate=duplicate,
                actor=actor,
                reason=reason,
                choices=MergeChoicesInput.to_choices(values.get("choices")),
                survivor_version=values.get("survivor_version"),
                duplicate_version=values.get("duplicate_version"),
            )
        return None

    @staticmethod
    def _survivor(candidate: MatchCandidate, wanted) -> tuple[Patient, Patient]:
        """(survivor, duplicate): patient_a survives unless told otherwise, as on the page."""
        a, b = candidate.patient_a, candidate.patient_b
        if wanted is None or wanted == a.uuid:
            return a, b
        if wanted == b.uuid:
            return b, a
        raise exceptions.ValidationError(
            {"survivor": [f"The survivor must be one of the pair: {a.uuid} or {b.uuid}."]}, code="invalid"
        )
