"""/api/v1/ routes of the search app (mpi/urls.py includes them)."""

from django.urls import path

from search.api.views import SearchView

urlpatterns = [path("search/", SearchView.as_view(), name="api-search")]
