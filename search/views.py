"""The clerk / steward search page (/search/).

One GET view: the full page, or only the results fragment when htmx asks for it
(``HX-Request``), so the same URL serves live search, the pushed history entry and a
plain form submit without JavaScript.
"""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from mpi.access import note_access
from mpi.db import reads_from_replica
from patients.codes import PHONE_SYSTEMS
from patients.models import Address, Contact, Identifier, Patient
from search.forms import PAGE_SIZE, SearchForm
from search.queries import SearchHit, SearchResult, search_patients

# What "matched on" badges say for the backend's labels (SearchHit.matched).
MATCH_LABELS = {
    "name": "name",
    "name:phonetic": "name sounds alike",
    "name:similar": "name spelled alike",
    "birth_date": "birth date",
    "birth_year": "birth year",
    "identifier": "identifier",
    "id": "record id",
    "phone": "phone",
    "email": "email",
    "postcode": "postcode",
}


def patient_url(hit: SearchHit) -> str:
    """Where a result links to: the patient page (switch it here, and only here)."""
    return reverse("matching:patient", args=[hit.uuid])


@dataclass(frozen=True)
class ResultRow:
    hit: SearchHit
    url: str
    identifiers: list[Identifier]
    phone: Contact | None
    address: Address | None
    badges: list[str]


def result_rows(hits: list[SearchHit]) -> list[ResultRow]:
    """The hits with what the table shows beyond the index row, in four queries."""
    if not hits:
        return []
    patients = Patient.all_objects.prefetch_related(
        Prefetch("identifiers", queryset=Identifier.all_objects.order_by("id")),
        Prefetch(
            "contacts",
            queryset=Contact.all_objects.filter(system__in=PHONE_SYSTEMS).order_by("rank", "id"),
            to_attr="phones",
        ),
        Prefetch("addresses", queryset=Address.all_objects.order_by("-primary", "id")),
    ).in_bulk([hit.patient_id for hit in hits])
    rows = []
    for hit in hits:
        patient = patients.get(hit.patient_id)
        if patient is None:  # purged between the search and this read
            continue
        rows.append(
            ResultRow(
                hit=hit,
                url=patient_url(hit),
                identifiers=list(patient.identifiers.all()),
                phone=patient.phones[0] if patient.phones else None,
                address=patient.primary_address,
                badges=[MATCH_LABELS.get(label, label) for label in hit.matched],
            )
        )
    return rows


def _pages(result: SearchResult, offset: int) -> dict:
    shown = len(result.hits)
    return {
        "first": offset + 1 if shown else 0,
        "last": offset + shown,
        "previous": max(0, offset - PAGE_SIZE) if offset else None,
        "next": offset + PAGE_SIZE if result.has_more else None,
    }


def _wants_fragment(request) -> bool:
    # A history restore (back button after a cache miss) needs the whole page.
    return "HX-Request" in request.headers and "HX-History-Restore-Request" not in request.headers


@login_required
@permission_required("patients.view_patient", raise_exception=True)
@require_GET
@reads_from_replica
def search(request):
    form = SearchForm(request.GET or None)
    result = None
    if form.is_bound and form.is_valid() and form.has_criteria():
        kwargs = form.search_kwargs()
        try:
            result = search_patients(**kwargs)
        except ValidationError as exc:  # a value the parser cannot read: a form error
            form.add_error(None, exc)
    context = {"form": form, "result": result}
    if result is not None:
        note_access(request, "search", [hit.uuid for hit in result.hits], query=request.GET.urlencode())
        context["rows"] = result_rows(result.hits)
        context["pages"] = _pages(result, kwargs["offset"])
    template = "search/_results.html" if _wants_fragment(request) else "search/search.html"
    response = render(request, template, context)
    # The same URL answers with a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response
