from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.lockout import LockoutAuthenticationForm
from mpi.api import api_not_found
from mpi.observability import healthz, readyz

admin.site.login_form = LockoutAuthenticationForm
admin.site.site_header = "Master Patient Index"
admin.site.site_title = "MPI admin"
admin.site.index_title = "Registry"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("search/", include("search.urls")),
    # REST API: each app adds its routes under /api/v1/.
    path("api/v1/", include("patients.api.urls")),
    path("api/v1/", include("search.api.urls")),
    path("api/v1/", include("matching.api.urls")),
    # The schema and its docs page hold no patient data: not throttled.
    path("api/schema/", SpectacularAPIView.as_view(throttle_classes=[]), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", throttle_classes=[]),
        name="api-docs",
    ),
    re_path(r"^api/", api_not_found),  # keep last: unknown API paths get a JSON 404
    # FHIR R4: /fhir and /fhir/<path>, no trailing slashes; unknown paths answer an OperationOutcome.
    re_path(r"^fhir(?:/|$)", include("fhir_api.urls")),
    # Steward pages: the dashboard (/), /review/, /merges/, /patients/<uuid>/.
    path("", include("matching.urls")),
]
