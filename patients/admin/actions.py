"""Soft delete, restore and purge in the patient admin.

Each asks for a reason first (it goes into every history row the write makes), then
calls the service once per patient, so one failure does not undo the others and is
reported by name. Django's own "delete selected" is never offered for patients.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from patients.admin.forms import ReasonForm
from patients.errors import PatientConflict
from patients.services import delete_patient, purge_patient, restore_patient

CONFIRM_TEMPLATE = "admin/patients/patient/confirm_with_reason.html"


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(getattr(exc, "message", exc))


def confirm_with_reason(
    modeladmin,
    request,
    patients,
    *,
    title: str,
    done: str,
    apply: Callable[..., object],
    action: str = "",
    purges: bool = False,
) -> TemplateResponse | None:
    """Show a confirmation page asking for a reason; once posted, apply it to each patient.

    Returns the page, or None when applied (an admin action then redirects back to the
    changelist, keeping its filters).
    """
    patients = list(patients)
    form = ReasonForm(request.POST if "confirm" in request.POST else None)
    if not form.is_valid():
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": title,
            "opts": modeladmin.opts,
            "patients": patients,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)
    reason = form.cleaned_data["reason"]
    succeeded = 0
    for patient in patients:
        try:
            apply(patient=patient, actor=request.user, reason=reason)
        except (PatientConflict, ValidationError) as exc:
            modeladmin.message_user(request, f"{patient}: {_message(exc)}", messages.ERROR)
            continue
        succeeded += 1
        if purges:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[patient],
                action_flag=DELETION,
                change_message=f"Purged: {reason}",
            )
        else:
            modeladmin.log_change(request, patient, f"{done}: {reason}")
    if succeeded:
        noun = "patient" if succeeded == 1 else "patients"
        modeladmin.message_user(request, f"{done} {succeeded} {noun}.", messages.SUCCESS)
    return None


@admin.action(description="Delete selected patients (soft: can be restored)", permissions=["delete"])
def soft_delete_selected(modeladmin, request, queryset):
    return confirm_with_reason(
        modeladmin,
        request,
        queryset,
        title="Delete patients",
        done="Deleted",
        apply=delete_patient,
        action="soft_delete_selected",
    )


@admin.action(description="Restore selected deleted patients", permissions=["restore"])
def restore_selected(modeladmin, request, queryset):
    return confirm_with_reason(
        modeladmin,
        request,
        queryset,
        title="Restore patients",
        done="Restored",
        apply=restore_patient,
        action="restore_selected",
    )


@admin.action(description="Purge selected deleted patients (permanent)", permissions=["purge"])
def purge_selected(modeladmin, request, queryset):
    return confirm_with_reason(
        modeladmin,
        request,
        queryset,
        title="Purge patients permanently",
        done="Purged",
        apply=purge_patient,
        action="purge_selected",
        purges=True,
    )
