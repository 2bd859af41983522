"""Routes under /fhir/ (mpi/urls.py mounts them with ``^fhir(?:/|$)``: no trailing slashes).

The search and operations modules contribute their own ``urlpatterns`` (relative to the
base, e.g. ``Patient/$match``); they come before the Patient routes, and an unknown
path under /fhir/ is a 404 OperationOutcome, never Django's HTML page. Do not
``reverse()`` these names: the mount pattern is not reversible; build URLs from
``fhir_api.views.base.fhir_base_url(request)``.
"""

from importlib import import_module

from django.urls import path, re_path

from fhir_api.views import patient, system


def _contributed(module: str) -> list:
    """``urlpatterns`` of an optional module (absent while it is being written)."""
    try:
        return list(import_module(module).urlpatterns)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return []


_ID = r"(?P<id>[A-Za-z0-9\-.]{1,64})"

urlpatterns = [
    path("", system.SystemView.as_view(), name="fhir-system"),
    path("metadata", system.MetadataView.as_view(), name="fhir-metadata"),
    *_contributed("fhir_api.views.search"),
    *_contributed("fhir_api.views.operations"),
    *_contributed("fhir_api.views.audit_events"),
    *_contributed("fhir_api.views.organizations"),
    path("Patient", patient.PatientTypeView.as_view(), name="fhir-patient-type"),
    path("Patient/_history", patient.PatientTypeHistoryView.as_view(), name="fhir-patient-type-history"),
    re_path(rf"^Patient/{_ID}$", patient.PatientInstanceView.as_view(), name="fhir-patient"),
    re_path(rf"^Patient/{_ID}/_history$", patient.PatientHistoryView.as_view(), name="fhir-patient-history"),
    re_path(
        rf"^Patient/{_ID}/_history/(?P<vid>[A-Za-z0-9\-.]{{1,64}})$",
        patient.PatientVersionView.as_view(),
        name="fhir-patient-version",
    ),
    re_path(r"", system.NotFoundView.as_view(), name="fhir-not-found"),  # keep last
]
