"""GET /api/v1/search/: the clerk search (``search.queries.search_patients``) for integrators.

The same function as the search page and the admin: free text and/or structured
fields, ranked best first, each hit saying what matched. Paged by page/page_size like
every list; ``count`` is a lower bound when a candidate source hit its cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from mpi.access import note_access, request_query
from mpi.api import error_responses
from mpi.db import replica_reads
from patients.api.views import HasActionPermission
from patients.models import Identifier
from search.api.serializers import SearchHitSerializer, SearchPageSerializer, SearchQuerySerializer
from search.queries import SearchHit, SearchResult, search_patients


@dataclass(frozen=True)
class RankedHit:
    hit: SearchHit
    rank: int
    identifiers: list[Identifier]


def ranked_hits(result: SearchResult, offset: int) -> list[RankedHit]:
    """The page's hits with their rank and live identifiers (one query for the page)."""
    held: dict[int, list[Identifier]] = {}
    ids = [hit.patient_id for hit in result.hits]
    for identifier in Identifier.objects.filter(patient_id__in=ids, live=True).order_by("patient_id", "id"):
        held.setdefault(identifier.patient_id, []).append(identifier)
    return [
        RankedHit(hit=hit, rank=offset + i + 1, identifiers=held.get(hit.patient_id, []))
        for i, hit in enumerate(result.hits)
    ]


def _page_links(request, page: int, has_more: bool) -> tuple[str | None, str | None]:
    url = request.build_absolute_uri()
    following = replace_query_param(url, "page", page + 1) if has_more else None
    if page <= 1:
        return following, None
    previous = remove_query_param(url, "page") if page == 2 else replace_query_param(url, "page", page - 1)
    return following, previous


class SearchView(generics.GenericAPIView):
    # One GET that answers a page object of its own (not a "list" action, which the
    # schema would describe as an array).
    action = "search"
    permission_classes = [HasActionPermission]
    action_permissions = {"search": "patients.view_patient"}
    serializer_class = SearchHitSerializer
    pagination_class = None  # paged by search_patients itself (limit/offset)
    metadata_class = None

    @extend_schema(
        summary="Search patients: free text and/or fields, ranked, with what matched",
        parameters=[SearchQuerySerializer],
        responses={200: SearchPageSerializer, **error_responses(400)},
        filters=False,
    )
    def get(self, request):
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        kwargs = query.search_kwargs()
        with replica_reads():
            result = search_patients(**kwargs)
        note_access(request, "search", [h.uuid for h in result.hits], query=request_query(request))
        following, previous = _page_links(request, query.validated_data["page"], result.has_more)
        page = {
            "count": result.total,
            "count_exact": result.total_exact,
            "next": following,
            "previous": previous,
            "results": ranked_hits(result, kwargs["offset"]),
        }
        return Response(SearchPageSerializer(page).data)
