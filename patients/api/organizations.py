"""``/api/v1/organizations/``: the facilities a patient's ``managing_organization`` names.

Read-only (organizations are kept in the admin); every role may read them
(``patients.view_organization``). ``id`` is the UUID to send as
``managing_organization``; ``identifier_system`` is the URI of the identifiers (MRNs)
the facility issues, blank when it issues none.
"""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from mpi.api import error_responses
from patients.api.filters import StrictBooleanFilter
from patients.api.views import UUID_PATTERN, HasActionPermission
from patients.models import Organization

VIEW = "patients.view_organization"


class OrganizationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)

    class Meta:
        model = Organization
        fields = ["id", "name", "identifier_system", "active"]


class OrganizationFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", max_length=200, help_text="Part of the name, any case."
    )
    identifier_system = django_filters.CharFilter(
        max_length=255, help_text="The URI of the identifiers it issues, exactly (urn:oid:...)."
    )
    active = StrictBooleanFilter()

    class Meta:
        model = Organization
        fields = ["name", "identifier_system", "active"]


@extend_schema_view(
    list=extend_schema(
        summary="List organizations (the facilities patients are managed by)",
        responses={200: OrganizationSerializer(many=True), **error_responses(400, 404)},
    ),
    retrieve=extend_schema(
        summary="Read an organization", responses={200: OrganizationSerializer, **error_responses(404)}
    ),
)
class OrganizationViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Organization.objects.order_by("name", "pk")
    serializer_class = OrganizationSerializer
    filterset_class = OrganizationFilter
    permission_classes = [HasActionPermission]
    action_permissions = {"list": VIEW, "retrieve": VIEW}
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = UUID_PATTERN
    metadata_class = None
