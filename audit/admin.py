"""Auditors read the trail here: read-only, filterable by patient, user, action and date."""

from __future__ import annotations

import uuid

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "recorded_at",
        "action",
        "outcome",
        "status_code",
        "interface",
        "username",
        "client",
        "ip",
        "patient_count",
    )
    list_filter = ("action", "outcome", "interface", ("recorded_at", admin.DateFieldListFilter))
    search_fields = ("username", "client", "request_id", "=ip")
    date_hierarchy = "recorded_at"
    ordering = ("-id",)
    show_full_result_count = False  # the table grows without bound: no count(*) per page

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="patients")
    def patient_count(self, obj) -> int:
        return len(obj.patients)

    def get_search_results(self, request, queryset, search_term):
        # A patient's public id finds every event that involved that patient (GIN index).
        try:
            patient = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(patients__contains=[patient]), False
