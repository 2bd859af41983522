"""System-level endpoints: the CapabilityStatement, Bundles at the base, unknown paths."""

from __future__ import annotations

from django.utils import timezone

from fhir_api.capability import capability_statement
from fhir_api.errors import FhirError
from fhir_api.views.base import PUBLIC, FhirView, fhir_base_url, fhir_response

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class MetadataView(FhirView):
    """``GET /fhir/metadata``: public, as clients read it before they authenticate."""

    permissions = {"GET": PUBLIC}

    def get(self, request):
        statement = capability_statement(
            base_url=fhir_base_url(request), date=timezone.now().date().isoformat()
        )
        return fhir_response(statement)


class NotFoundView(FhirView):
    """Every path under /fhir/ that no route claims: a 404 OperationOutcome, any method."""

    permissions = dict.fromkeys(ALL_METHODS, PUBLIC)

    def _not_found(self, request, *args, **kwargs):
        raise FhirError(
            404,
            "not-found",
            f"No FHIR endpoint at {request.path}. This server has Patient and AuditEvent only; see "
            f"{fhir_base_url(request)}/metadata.",
        )

    get = post = put = patch = delete = options = _not_found


class SystemView(FhirView):
    """``POST /fhir``: a ``transaction`` or ``batch`` Bundle (fhir_api.bundles).

    Any authenticated user may post one; each entry is checked against the permission of
    its own interaction.
    """

    permissions = {"POST": None}

    def post(self, request):
        from fhir_api.bundles import process_bundle

        bundle = self.resource_body(request, "Bundle")
        return fhir_response(process_bundle(bundle, user=request.user, base_url=fhir_base_url(request)))
