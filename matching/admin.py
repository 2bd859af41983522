"""The matcher in the admin: the duplicate warning on "Add patient", and read-only views
of the candidate queue and the match model versions.

``patients`` cannot import ``matching`` (ARCHITECTURE.md), so, like ``search.admin``,
this module re-registers a subclass of whatever Patient admin is registered when it is
imported (matching comes after search in INSTALLED_APPS, so it extends the search
app's subclass). The subclass only adds a check before a new patient is registered.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from matching.model import MatchGrade
from matching.models import MatchCandidate, MatchModelVersion
from matching.services import MatchOutcome, match_patient
from patients.admin import ServiceRejected
from patients.admin.forms import build_patient_data
from patients.data import clean_patient_data
from patients.models import Identifier, Patient

# The request attribute that carries the likely duplicates to the second rendering.
DUPLICATES_ATTR = "_patient_admin_likely_duplicates"
# How many likely duplicates the warning lists at most.
MAX_SHOWN = 5

RegisteredPatientAdmin = type(admin.site._registry[Patient])


def likely_duplicates(form, formsets) -> list[MatchOutcome]:
    """What ``match_patient`` finds at ``possible`` or above for the patient being added."""
    data, _ = build_patient_data(form, formsets)
    try:
        probe = clean_patient_data(data)
    except ValidationError:
        return []  # register_patient reports it, on the rows the clerk typed
    if probe.identifiers:
        taken = Q()
        for ident in probe.identifiers:
            taken |= Q(system=ident.system, value=ident.value)
        if Identifier.all_objects.filter(taken, live=True).exists():
            # register_patient refuses it outright, naming the holder: that says more.
            return []
    return match_patient(probe, limit=MAX_SHOWN, min_grade=MatchGrade.POSSIBLE)


class DuplicateWarningPatientAdmin(RegisteredPatientAdmin):
    """Warns about likely duplicates before a new patient is registered.

    The first "Save" of a new patient that matches existing ones at ``possible`` or
    above is refused with a list of them; the clerk opens the existing record, or
    ticks "create anyway" and gives a reason, which goes into the history. The
    confirmation covers the records listed: one registered meanwhile warns again.
    """

    add_form_template = "admin/matching/patient_add_form.html"

    def save_related(self, request, form, formsets, change):
        if not change:
            self._check_duplicates(request, form, formsets)
        super().save_related(request, form, formsets, change)

    def _check_duplicates(self, request, form, formsets) -> None:
        outcomes = likely_duplicates(form, formsets)
        if not outcomes:
            return
        shown = {str(o.patient_uuid) for o in outcomes}
        seen = set(request.POST.get("duplicates_seen", "").split())
        confirmed = bool(request.POST.get("confirm_duplicates"))
        reason = request.POST.get("duplicate_reason", "").strip()[:500]
        if confirmed and reason and shown <= seen:
            grades = ", ".join(sorted({o.grade.label.lower() for o in outcomes}))
            noun = "duplicate" if len(outcomes) == 1 else "duplicates"
            note = f"Created despite {len(outcomes)} likely {noun} ({grades}): {reason}"
            given = form.cleaned_data.get("change_reason", "")
            form.cleaned_data["change_reason"] = f"{given}. {note}" if given else note
            return
        if confirmed and shown <= seen:
            message = "Say why you create a new record although it may be a duplicate."
        elif confirmed:
            message = "Another likely duplicate was found since you confirmed: check the list again."
        elif any(o.grade == MatchGrade.CERTAIN for o in outcomes):
            message = (
                "This patient is almost certainly registered already. Open the existing record below, "
                "or tick “Create anyway” and say why this is a different person."
            )
        else:
            message = (
                "This patient may be registered already. Open a record below if it is the same person, "
                "or tick “Create anyway” and say why not."
            )
        # The admin's own re-render (PatientAdmin.changeform_view): nothing is saved and
        # the message shows on the form; the list goes to the template.
        setattr(request, DUPLICATES_ATTR, outcomes)
        raise ServiceRejected({"": {None: [message]}})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        outcomes = getattr(request, DUPLICATES_ATTR, None)
        if add and outcomes:
            patients = Patient.all_objects.with_children().in_bulk([o.patient_id for o in outcomes])
            context["likely_duplicates"] = [
                {
                    "patient": patients[o.patient_id],
                    "grade": o.grade,
                    "probability": o.probability,
                    "admin_url": reverse("admin:patients_patient_change", args=[o.patient_id]),
                    "page_url": reverse("matching:patient", args=[o.patient_uuid]),
                }
                for o in outcomes
                if o.patient_id in patients
            ]
            context["duplicates_seen"] = " ".join(str(o.patient_uuid) for o in outcomes)
            context["duplicate_reason"] = request.POST.get("duplicate_reason", "")
            context["confirm_duplicates"] = bool(request.POST.get("confirm_duplicates"))
        return super().render_change_form(request, context, add, change, form_url, obj)


admin.site.unregister(Patient)
admin.site.register(Patient, DuplicateWarningPatientAdmin)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the services only: the admin shows, never edits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MatchCandidate)
class MatchCandidateAdmin(ReadOnlyAdmin):
    list_display = ("pair", "grade", "probability", "status", "claimed_by", "decided_by", "created_at")
    list_filter = ("status", "grade")
    list_select_related = ("patient_a", "patient_b", "claimed_by", "decided_by")
    ordering = ("-probability", "pk")
    fields = (
        "patient_a", "patient_b", "grade", "probability", "weight", "status", "reason", "note",
        "blocks", "model_version", "evidence", "decided_by", "decided_at", "claimed_by", "claimed_until",
        "created_at", "updated_at", "review_page",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="pair")
    def pair(self, obj: MatchCandidate) -> str:
        return f"{obj.patient_a.uuid} ~ {obj.patient_b.uuid}"

    @admin.display(description="review page")
    def review_page(self, obj: MatchCandidate) -> str:
        url = reverse("matching:candidate", args=[obj.patient_a.uuid, obj.patient_b.uuid])
        return format_html('<a href="{}">Open the candidate page</a>', url)


@admin.register(MatchModelVersion)
class MatchModelVersionAdmin(ReadOnlyAdmin):
    list_display = ("version", "active", "notes", "created_at", "created_by")
    list_filter = ("active",)
    fields = ("version", "active", "notes", "params", "training", "created_at", "created_by")
    readonly_fields = fields
