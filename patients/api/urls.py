"""/api/v1/ routes of the patients app (mpi/urls.py includes them)."""

from rest_framework.routers import SimpleRouter

from patients.api.organizations import OrganizationViewSet
from patients.api.views import IdentifierViewSet, PatientViewSet

router = SimpleRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("identifiers", IdentifierViewSet, basename="identifier")
router.register("organizations", OrganizationViewSet, basename="organization")

urlpatterns = router.urls
