"""``GET /fhir/AuditEvent`` and ``GET /fhir/AuditEvent/<id>``: the access audit trail for auditors.

Mapping and query live in ``fhir_api.audit_events``. Reading the trail is itself recorded
(action ``search`` or ``read``, ``detail.resource = "AuditEvent"``) but names no
patient: an auditor looking at who read a patient has not read that patient's data, and
``AuditEvent?patient=X`` must not list the auditors' own look-ups as accesses to X.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import re_path

from audit.models import AuditEvent
from fhir_api import capability
from fhir_api.audit_events import (
    ACTION_LETTERS,
    DATE_PREFIXES,
    MAX_COUNT,
    OUTCOME_CODES,
    SUBTYPES,
    AuditSearch,
    after_cursor,
    audit_event_to_fhir,
    audit_queryset,
    parse_audit_search,
)
from fhir_api.errors import FhirError, issue
from fhir_api.search import searchset
from fhir_api.search_params import SearchParamError
from fhir_api.views.base import FhirView, fhir_base_url, fhir_response
from mpi.access import note_access
from patients.data import whole_number

VIEW = "audit.view_auditevent"
AUDIT_READ = {"resource": "AuditEvent"}


def _link(relation: str, base_url: str, search: AuditSearch, cursor: int | None) -> dict:
    params = [*search.raw, ("_sort", "-date" if search.descending else "date"), ("_count", str(search.count))]
    if cursor is not None:
        params.append(("_cursor", str(cursor)))
    return {"relation": relation, "url": f"{base_url}/AuditEvent?{urlencode(params, safe=':|,/')}"}


class AuditEventTypeView(FhirView):
    permissions = {"GET": VIEW}

    def get(self, request):
        pairs = [(k, v) for k, values in request.query_params.lists() for v in values]
        try:
            search = parse_audit_search(pairs)
            events = after_cursor(audit_queryset(search), search)
        except SearchParamError as exc:
            raise FhirError(
                400, exc.code, f"Search parameter {exc.param}: {exc.message}", expression=[exc.param]
            ) from None
        page = list(events[: search.count + 1]) if search.count else []
        more = len(page) > search.count
        page = page[: search.count]
        base = fhir_base_url(request)
        links = [_link("self", base, search, search.cursor), _link("first", base, search, None)]
        if more:
            links.append(_link("next", base, search, page[-1].pk))
        entries = [
            {
                "fullUrl": f"{base}/AuditEvent/{event.pk}",
                "resource": audit_event_to_fhir(event, base_url=base),
                "search": {"mode": "match"},
            }
            for event in page
        ]
        issues = [issue("informational", n, severity="warning") for n in search.notes]
        bundle = searchset(entries, links, issues=issues)
        note_access(request, "search", (), query=request.META.get("QUERY_STRING", ""), detail=AUDIT_READ)
        return fhir_response(bundle)


class AuditEventInstanceView(FhirView):
    permissions = {"GET": VIEW}

    def get(self, request, id):
        event = AuditEvent.objects.filter(pk=pk).first() if (pk := whole_number(id)) is not None else None
        if event is None:
            raise FhirError(404, "not-found", f"No AuditEvent/{id}.")
        note_access(request, "read", (), detail=AUDIT_READ)
        return fhir_response(audit_event_to_fhir(event, base_url=fhir_base_url(request)))


urlpatterns = [
    re_path(r"^AuditEvent$", AuditEventTypeView.as_view(), name="fhir-auditevent-type"),
    re_path(
        r"^AuditEvent/(?P<id>[A-Za-z0-9\-.]{1,64})$", AuditEventInstanceView.as_view(), name="fhir-auditevent"
    ),
]


def _register() -> None:
    """Declare AuditEvent in the CapabilityStatement (GET /fhir/metadata)."""
    params = [
        (
            "patient",
            "reference",
            "Patient/<id> (or the id): events that involved the patient. Comma = any of.",
        ),
        ("agent", "string", "The user's username, exactly (ours: a name, not a Practitioner reference)."),
        ("altid", "token", "The API client: token:<prefix> for a token, user:<id> for a browser session."),
        ("address", "token", "The client's IP address (agent.network.address)."),
        ("date", "date", f"When recorded. Prefixes {' '.join(DATE_PREFIXES)}; a partial date is a range."),
        ("action", "token", f"{' | '.join(ACTION_LETTERS)} (a search or an operation that reads is E)."),
        ("subtype", "token", f"The interaction or our operation: {', '.join(SUBTYPES)}."),
        ("outcome", "token", f"{' | '.join(OUTCOME_CODES)}: success, refused or 4xx, 5xx."),
        ("_sort", "string", "-date (default, newest first) or date."),
        ("_count", "number", f"Page size: default 20, at most {MAX_COUNT}."),
        ("_cursor", "number", "Where the next page starts (the next link carries it)."),
    ]
    capability.register_resource(
        "AuditEvent",
        profile="http://hl7.org/fhir/StructureDefinition/AuditEvent",
        interactions=["read", "search-type"],
        search_params=params,
        documentation="The access audit trail (IHE BALP shape); auditors only (audit.view_auditevent).",
    )


_register()
