"""/api/v1/ routes of the matching app (mpi/urls.py includes them)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from matching.api.merges import MergeViewSet
from matching.api.views import CandidateViewSet, MatchViewSet

router = SimpleRouter()
router.register("candidates", CandidateViewSet, basename="candidate")
router.register("merges", MergeViewSet, basename="merge")

urlpatterns = [
    path("match/", MatchViewSet.as_view({"post": "create"}), name="match"),
    *router.urls,
]
