"""FHIR Patient search: a request's parameters in, a ``searchset`` Bundle out.

``search_bundle`` serves ``GET /fhir/Patient`` (fhir_api.views.patient), ``POST
/fhir/Patient/_search`` (fhir_api.views.search) and batch GET entries alike. The parts:
``fhir_api.search_params`` reads the parameters (pure), ``fhir_api.search_query`` makes
the QuerySet, ``fhir_api.mapping.patients_to_fhir`` renders a page in a fixed number
of queries. A page costs: one query for its ids (plus one extra row to know whether
another page follows), six for the resources, and a count only when there is a next
page and the client did not ask ``_total=none``.

Paging is by offset over a deterministic order (the requested ``_sort`` keys, then the
primary key): ``next`` links are plain GET URLs, also when the search was a POST.
docs/fhir.md, "Search".
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.utils import timezone

from fhir_api import capability
from fhir_api.errors import FhirError, issue, operation_outcome
from fhir_api.mapping import full_url, organization_to_fhir, patients_to_fhir
from fhir_api.search_params import (
    INCLUDES,
    PARAMS,
    SORT_KEYS,
    SearchParamError,
    SearchRequest,
    parse_search,
    subset_resource,
)
from fhir_api.search_query import count_total, page_ids, patient_queryset
from mpi.db import replica_reads
from patients.models import Organization


def handling(prefer: str | None) -> str:
    """``strict`` or ``lenient`` from a ``Prefer`` header (``return=minimal, handling=strict``)."""
    for part in (prefer or "").replace(";", ",").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "handling" and value.strip().strip('"').lower() == "strict":
            return "strict"
    return "lenient"


def _pairs(params) -> list[tuple[str, str]]:
    if hasattr(params, "lists"):  # a QueryDict: keep repetitions (AND)
        return [(k, v) for k, values in params.lists() for v in values]
    return list(params)


def _link(relation: str, base_url: str, search: SearchRequest, offset: int) -> dict:
    query = urlencode(search.link_params(offset=offset), safe=":|,/")
    return {"relation": relation, "url": f"{base_url}/Patient?{query}"}


def searchset(entries: list[dict], links: list[dict], *, total: int | None = None, issues=()) -> dict:
    """A searchset Bundle of ``entries`` (match, then include), with an OperationOutcome
    entry for ``issues`` (warnings about the search) after them when there are any.
    Shared by every search of the API (Patient, Organization, AuditEvent)."""
    bundle: dict = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": timezone.now().isoformat()},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if issues:
        outcome = operation_outcome(list(issues))
        entries = [
            *entries,
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": outcome, "search": {"mode": "outcome"}},
        ]
    if entries:
        bundle["entry"] = entries
    return bundle


def search_bundle(params, *, base_url: str, user=None, prefer: str | None = None) -> dict:
    """The searchset Bundle for ``params`` (a QueryDict or (name, value) pairs).

    ``prefer`` is the request's ``Prefer`` header: ``handling=strict`` makes an unknown
    parameter an error instead of a warning. ``user`` has already been allowed to read
    patients; every reader sees the same results. Raises FhirError (400) naming the
    parameter that cannot be honoured.
    """
    del user
    try:
        search = parse_search(_pairs(params), strict=handling(prefer) == "strict")
    except SearchParamError as exc:
        raise FhirError(
            400, exc.code, f"Search parameter {exc.param}: {exc.message}", expression=[exc.param]
        ) from None
    notes = list(search.notes)
    if any(c.param == "mothersMaidenName" and c.modifier != "missing" for c in search.clauses):
        notes.append(
            "mothersMaidenName: this registry does not record a mother's maiden name; nothing matches."
        )
    base_url = base_url.rstrip("/")
    with replica_reads():
        queryset = patient_queryset(search)
        if search.summary == "count" or search.count == 0:
            ids, more = [], False
            total = count_total(queryset, mode="estimate" if search.total == "estimate" else "accurate")
        else:
            ids, more = page_ids(queryset, count=search.count, offset=search.offset)
            total = None
            if search.total != "none":
                if not more and (ids or search.offset == 0):
                    total = search.offset + len(ids)  # the last page: no count needed
                else:
                    total = count_total(queryset, mode=search.total)
        resources = patients_to_fhir(ids, base_url=base_url) if ids else []
        included = _included(resources, search.includes)

    links = [_link("self", base_url, search, search.offset)]
    if search.summary != "count" and search.count:
        links.append(_link("first", base_url, search, 0))
        if search.offset:
            links.append(_link("previous", base_url, search, max(0, search.offset - search.count)))
        if more:
            links.append(_link("next", base_url, search, search.offset + search.count))
    entries = [
        {
            "fullUrl": full_url(base_url, resource["id"]),
            "resource": subset_resource(resource, summary=search.summary, elements=search.elements),
            "search": {"mode": "match"},
        }
        for resource in resources
    ]
    entries += [
        {
            "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": "include"},
        }
        for resource in included
    ]
    issues = [
        issue("informational" if "maximum" in n else "not-supported", n, severity="warning") for n in notes
    ]
    return searchset(entries, links, total=total, issues=issues)


def _included(resources: list[dict], includes: tuple[str, ...]) -> list[dict]:
    """The resources ``_include`` asks for, once each: the page's managing organizations."""
    if "Patient:organization" not in includes:
        return []
    wanted = []
    for resource in resources:
        reference = (resource.get("managingOrganization") or {}).get("reference", "")
        if reference.startswith("Organization/") and reference not in wanted:
            wanted.append(reference)
    uuids = [reference.removeprefix("Organization/") for reference in wanted]
    found = {str(org.uuid): org for org in Organization.objects.filter(uuid__in=uuids)}
    return [organization_to_fhir(found[u]) for u in uuids if u in found]


def _register() -> None:
    """Declare the search in the CapabilityStatement (GET /fhir/metadata)."""
    capability.register_interaction("search-type")
    for value in sorted(set(INCLUDES.values())):
        capability.register_search_include(value)
    for spec in PARAMS.values():
        modifiers = f" Modifiers: {', '.join(':' + m for m in spec.modifiers)}." if spec.modifiers else ""
        capability.register_search_param(
            spec.name, spec.type, spec.documentation + modifiers, spec.definition
        )
    capability.register_search_param(
        "_sort", "string", f"Sort keys: {', '.join(SORT_KEYS)}; '-' for descending. Then by creation order."
    )
    capability.register_search_param(
        "_count", "number", "Page size: default 20, at most 100; 0 = only the total."
    )
    capability.register_search_param(
        "_offset", "number", "Entries to skip (the next/previous links carry it)."
    )
    capability.register_search_param(
        "_total", "token", "none | estimate | accurate (default; counted only when there is a next page)."
    )
    capability.register_search_param("_summary", "token", "count | true | data | text | false.")
    capability.register_search_param(
        "_elements", "string", "Top-level Patient elements to return (SUBSETTED)."
    )


_register()
