from django.urls import path

from matching.views import candidate, dashboard, merges, patients, queue

app_name = "matching"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("review/", queue.queue, name="queue"),
    path("review/next/", queue.review_next, name="next"),
    path("review/<uuid:a>/<uuid:b>/", candidate.candidate_detail, name="candidate"),
    path("review/<uuid:a>/<uuid:b>/claim/", queue.claim, name="claim"),
    path("review/<uuid:a>/<uuid:b>/merge/", candidate.merge, name="merge_pair"),
    path("review/<uuid:a>/<uuid:b>/link/", candidate.link, name="link"),
    path("review/<uuid:a>/<uuid:b>/not-duplicate/", candidate.not_duplicate, name="not_duplicate"),
    path("merges/", merges.merge_list, name="merges"),
    path("merges/<uuid:uuid>/", merges.merge_detail, name="merge"),
    path("merges/<uuid:uuid>/unmerge/", merges.unmerge, name="unmerge"),
    path("patients/<uuid:uuid>/", patients.patient_detail, name="patient"),
]
