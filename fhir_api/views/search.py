"""``POST /fhir/Patient/_search``: the search with its parameters in a form body.

``GET /fhir/Patient`` is served by fhir_api.views.patient; both answer with
``fhir_api.search.search_bundle``. Parameters may be in the URL and the body at once
(R4 http.html#search); a form body is the only body accepted.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import path
from rest_framework.parsers import FormParser

from fhir_api.access import patient_ids
from fhir_api.interactions import READ
from fhir_api.search import search_bundle
from fhir_api.views.base import FhirView, fhir_base_url, fhir_response
from mpi.access import note_access
from mpi.db import replica_reads


class PatientSearchView(FhirView):
    permissions = {"POST": READ}
    parser_classes = [FormParser]

    def post(self, request):
        params = [(k, v) for k, values in request.query_params.lists() for v in values]
        params += [(k, v) for k, values in request.data.lists() for v in values] if request.data else []
        with replica_reads():
            bundle = search_bundle(
                params,
                base_url=fhir_base_url(request),
                user=request.user,
                prefer=request.headers.get("Prefer"),
            )
        note_access(request, "search", patient_ids(bundle), query=urlencode(params)[:10_000])
        return fhir_response(bundle)


urlpatterns = [path("Patient/_search", PatientSearchView.as_view(), name="fhir-patient-search")]
