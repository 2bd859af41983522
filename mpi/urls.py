from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Master Patient Index"
admin.site.site_title = "MPI admin"
admin.site.index_title = "Registry"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
