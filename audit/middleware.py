"""Audits every request that touches patient data.

- Writes are audited by ``audit.receivers`` inside their own transaction.
- Reads (read, vread, search, match, history, resolve, ...) are declared by the view with
  ``mpi.access.note_access(request, action, patients, query=...)``; after the view has answered,
  this middleware records them in one short transaction. If that fails, the response
  is replaced by a 503 **without the data**: no read goes unaudited (fail closed).
- Refusals (401/403, and the pages' and admin's redirect to the login page) and failed
  writes on patient-data paths are recorded with their outcome, best effort (a refusal
  returns no data, so it is not held back).
"""

from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import resolve_url

from audit import services
from audit.models import Action, Interface, Outcome
from mpi.access import AuditUnavailable, noted_accesses
from mpi.security import client_ip

logger = logging.getLogger(__name__)

# Paths whose requests touch patient data (the rest — static files, health checks, the
# API schema and docs, the FHIR CapabilityStatement — do not).
PATIENT_PREFIXES = (
    "/api/v1/",
    "/fhir/",
    "/admin/patients/",
    "/admin/matching/",
    "/search/",
    "/review/",
    "/merges/",
    "/patients/",
)
NOT_PATIENT_DATA = ("/fhir/metadata", "/api/schema/", "/api/docs/")
WRITE_ACTIONS = {"POST": Action.CREATE, "PUT": Action.UPDATE, "PATCH": Action.UPDATE, "DELETE": Action.DELETE}


def _interface(path: str) -> str:
    if path.startswith("/api/"):
        return Interface.REST
    if path.startswith("/fhir"):
        return Interface.FHIR
    if path.startswith("/admin/"):
        return Interface.ADMIN
    return Interface.PAGES


def touches_patient_data(path: str) -> bool:
    return path.startswith(PATIENT_PREFIXES) and not path.startswith(NOT_PATIENT_DATA)


def is_login_redirect(response) -> bool:
    """The pages' and the admin's refusal of an anonymous (or, in the admin, non-staff) user."""
    return response.status_code == 302 and response.get("Location", "").startswith(
        f"{resolve_url(settings.LOGIN_URL)}?"
    )


def unavailable_response(request) -> JsonResponse:
    message = "The access could not be audited, so no patient data is returned. Try again later."
    if request.path.startswith("/fhir"):
        body = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "transient", "diagnostics": message}],
        }
        return JsonResponse(body, status=503, content_type="application/fhir+json")
    body = {"errors": [{"field": None, "code": "audit-unavailable", "message": message}]}
    return JsonResponse(body, status=503)


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        context = services.RequestContext(
            request=request,
            interface=_interface(request.path),
            ip=client_ip(request),
            request_id=getattr(request, "request_id", ""),
            method=request.method,
        )
        with services.request_context(context):
            response = self.get_response(request)
            accesses = noted_accesses(request)
            if accesses and response.status_code < 400:
                try:
                    # One access (the usual case) is one INSERT in autocommit: no BEGIN and
                    # COMMIT round trips on every read. Several are written together.
                    together = transaction.atomic() if len(accesses) > 1 else contextlib.nullcontext()
                    with together:
                        for access in accesses:
                            services.record(
                                action=access.action,
                                patients=access.patients,
                                query=access.query,
                                detail=access.detail,
                                status_code=response.status_code,
                            )
                except AuditUnavailable:
                    logger.exception("Audit record failed: the read is refused")
                    return unavailable_response(request)
            elif (response.status_code >= 400 or is_login_redirect(response)) and touches_patient_data(
                request.path
            ):
                self._record_refusal(request, response, accesses)
        return response

    def _record_refusal(self, request, response, accesses) -> None:
        status = response.status_code
        if status in (401, 403) or status == 302:  # 302: sent to the login page
            outcome = Outcome.DENIED
        elif request.method in WRITE_ACTIONS or accesses or status >= 500:
            outcome = Outcome.FAILED
        else:
            return  # a 404/400 on a read touched no patient's data
        action = accesses[0].action if accesses else WRITE_ACTIONS.get(request.method, Action.READ)
        try:
            services.record(action=action, outcome=outcome, status_code=status)
        except AuditUnavailable:
            logger.exception("Audit record of a refused request failed")
