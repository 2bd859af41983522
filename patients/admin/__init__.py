"""The Django admin for registration clerks: patients and organizations.

The patient admin never writes a row itself. Saving builds one ``PatientData`` from
the form and its inlines and calls ``register_patient`` / ``update_patient``; what the
services reject comes back as form errors (see ``changeform_view``). "Delete" is the
soft delete, with restore and a superuser-only purge as actions, all with a reason.
The search lives in ``get_search_results`` alone: the search app re-registers a
subclass of ``PatientAdmin`` that replaces it.
"""

from __future__ import annotations

import re

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import CharField, Count, Exists, F, Func, OuterRef, Prefetch, Q, Value
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from mpi.access import note_access
from patients.admin.actions import confirm_with_reason, purge_selected, restore_selected, soft_delete_selected
from patients.admin.forms import (
    ERRORS_ATTR,
    PatientForm,
    build_patient_data,
    error_messages,
    route_service_errors,
    service_errors_for,
)
from patients.admin.inlines import AddressInline, ContactInline, IdentifierInline, LinkInline, NameInline
from patients.codes import MERGE_LINK_TYPES, PHONE_SYSTEMS, IdentifierType
from patients.data import whole_number
from patients.errors import PatientConflict
from patients.models import Address, Contact, Identifier, Link, Name, Organization, Patient
from patients.services import delete_patient, register_patient, update_patient

__all__ = ["OrganizationAdmin", "PatientAdmin"]

_PHONE_LIKE = re.compile(r"[\d\s()+./-]+")


class ServiceRejected(Exception):
    """A service refused the write; carries its errors, routed to the form rows."""

    def __init__(self, errors) -> None:
        super().__init__("The services rejected the admin form.")
        self.errors = errors


class DeletedFilter(admin.SimpleListFilter):
    """Live patients unless asked otherwise (the queryset itself includes the deleted)."""

    title = "deleted"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("no", "Not deleted"), ("yes", "Deleted"), ("all", "All")]

    def value(self):
        return super().value() or "no"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        if self.value() == "all":
            return queryset
        return queryset.filter(deleted_at__isnull=True)


def _change_url(patient_pk) -> str:
    return reverse("admin:patients_patient_change", args=[patient_pk])


def _child_history(patient_pk, limit: int = 200) -> list:
    """The history rows of the patient's names, identifiers, ..., newest first."""
    records = []
    for model in (Name, Identifier, Address, Contact, Link):
        rows = model.history.filter(patient_id=patient_pk).select_related("history_user")
        for record in rows.order_by("-history_date", "-history_id")[:limit]:
            record.kind = model._meta.verbose_name
            if model is Link:
                # Not str(): that reads the other patient, which may have been purged.
                url = _change_url(record.other_id)
                record.summary = format_html('{} <a href="{}">other record</a>', record.type, url)
            else:
                record.summary = str(record.instance)
            records.append(record)
    records.sort(key=lambda r: r.history_date, reverse=True)
    return records[:limit]


@admin.register(Patient)
class PatientAdmin(SimpleHistoryAdmin):
    form = PatientForm
    inlines = [NameInline, IdentifierInline, AddressInline, ContactInline, LinkInline]
    list_display = ("patient_name", "birth_date", "gender", "primary_mrn", "active", "updated_at")
    list_filter = ("gender", "active", DeletedFilter, "managing_organization")
    # What get_search_results searches (it ignores these); a non-empty tuple shows the box.
    search_fields = ("names__family", "names__given", "identifiers__value", "contacts__normalized_value")
    search_help_text = "A name (accents and case ignored), an identifier value or a phone number."
    ordering = ("-updated_at",)
    actions = [soft_delete_selected, restore_selected, purge_selected]
    readonly_fields = (
        "uuid", "version", "merge_links", "created_at", "created_by", "updated_at", "updated_by",
        "deleted_at", "deleted_by",
    )  # fmt: skip
    history_list_display = ["version"]
    object_history_template = "admin/patients/patient/object_history.html"

    # -- reading ---------------------------------------------------------------------

    def get_queryset(self, request):
        # all_objects: a deleted patient stays viewable and restorable; the changelist
        # hides it through DeletedFilter. The prefetches serve the list columns.
        queryset = Patient.all_objects.select_related("managing_organization").prefetch_related(
            Prefetch("names", queryset=Name.all_objects.order_by("-primary", "id")),
            Prefetch(
                "identifiers",
                queryset=Identifier.all_objects.filter(type=IdentifierType.MR).order_by("id"),
                to_attr="medical_record_numbers",
            ),
        )
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    @admin.display(description="name")
    def patient_name(self, obj: Patient) -> str | None:
        name = obj.primary_name
        return name.display if name else None

    @admin.display(description="primary MRN")
    def primary_mrn(self, obj: Patient) -> str | None:
        """The MRN issued by the managing organization, else the first one recorded."""
        mrns = obj.medical_record_numbers
        system = obj.managing_organization.identifier_system if obj.managing_organization_id else ""
        mrn = next((i for i in mrns if system and i.system == system), mrns[0] if mrns else None)
        return mrn.value if mrn else None

    @admin.display(description="merge links")
    def merge_links(self, obj: Patient) -> str:
        links = Link.all_objects.filter(patient=obj, type__in=MERGE_LINK_TYPES).select_related("other")
        rows = [(link.get_type_display(), _change_url(link.other_id), link.other) for link in links]
        return format_html_join(", ", '{} <a href="{}">{}</a>', rows)

    def get_search_results(self, request, queryset, search_term):
        """Every word in a name (accents and case ignored), an identifier value, or a phone."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q(Exists(Identifier.all_objects.filter(patient=OuterRef("pk"), value__iexact=term)))
        digits = re.sub(r"\D", "", term)
        if _PHONE_LIKE.fullmatch(term) and len(digits) >= 4:
            # Phones are stored in E.164, so the typed digits are a substring of it.
            phones = Contact.all_objects.filter(
                patient=OuterRef("pk"), system__in=PHONE_SYSTEMS, normalized_value__contains=digits
            )
            matches |= Q(Exists(phones))
        names = Name.all_objects.filter(patient=OuterRef("pk")).annotate(
            given_text=Func(F("given"), Value(" "), function="array_to_string", output_field=CharField())
        )
        every_word = Q()
        for word in term.split():
            plain = Func(Value(word), function="unaccent", output_field=CharField())
            every_word &= Q(
                Exists(
                    names.filter(
                        Q(family__unaccent__icontains=plain)
                        | Q(given_text__unaccent__icontains=plain)
                        | Q(text__unaccent__icontains=plain)
                    )
                )
            )
        return queryset.filter(matches | every_word), False

    # -- permissions -----------------------------------------------------------------

    def has_change_permission(self, request, obj=None):
        # A deleted patient is read-only until restored (update_patient refuses it too).
        return super().has_change_permission(request, obj) and not getattr(obj, "is_deleted", False)

    def has_delete_permission(self, request, obj=None):
        """ "Delete" is the soft delete (patients.delete_patient)."""
        return super().has_delete_permission(request, obj) and not getattr(obj, "is_deleted", False)

    def has_restore_permission(self, request) -> bool:
        return request.user.has_perm("patients.restore_patient")

    def has_purge_permission(self, request) -> bool:
        # No role holds it: superusers, or someone granted it explicitly.
        return request.user.has_perm("patients.purge_patient")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a real delete; purge_selected is the audited one
        return actions

    def _refuse_unpermitted_action(self, request) -> None:
        """403 for a posted action this user may not run (restore, purge).

        Django's answer would be "No action selected" and a redirect: a refusal that
        names no reason and that the audit trail would not see as one.
        """
        wanted = request.POST.get("action") if request.method == "POST" else None
        ours = {getattr(action, "__name__", action) for action in self.actions or ()}
        if wanted in ours and wanted not in self.get_actions(request):
            raise PermissionDenied(f"Your role does not allow the action '{wanted}' on patients.")

    # -- the change form -------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (
                None,
                {
                    "fields": [
                        "active",
                        ("gender", "birth_date"),
                        "marital_status",
                        ("deceased", "deceased_at"),
                        ("multiple_birth", "multiple_birth_order"),
                        "managing_organization",
                    ]
                },
            )
        ]
        if obj is None or self.has_change_permission(request, obj):
            change_fields = ["change_reason", "expected_version"] if obj else ["change_reason"]
            fieldsets.append(("This change", {"fields": change_fields}))
        if obj is not None:
            record = ["uuid", "version", "merge_links", ("created_at", "created_by")]
            record += [("updated_at", "updated_by"), ("deleted_at", "deleted_by")]
            fieldsets.append(("Record", {"fields": record}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"service_errors": service_errors_for(request)})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is not None and request.method == "GET" and (pk := whole_number(object_id)) is not None:
            self._note(request, "read", Patient.all_objects.filter(pk=pk))
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRejected as rejected:
            # The admin's transaction rolled the failed write back. Process the same POST
            # again with the errors bound to the forms: it re-renders and saves nothing.
            setattr(request, ERRORS_ATTR, rejected.errors)
            return super().changeform_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _note(request, action: str, patients) -> None:
        """Declare the patients this page shows, for the access audit trail."""
        note_access(request, action, list(patients.values_list("uuid", flat=True)))

    def changelist_view(self, request, extra_context=None):
        self._refuse_unpermitted_action(request)
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}) or {}
        if "cl" in changelist:
            shown = [p.uuid for p in changelist["cl"].result_list]
            note_access(request, "search", shown, query=request.GET.urlencode())
        return response

    def save_model(self, request, obj, form, change):
        """Nothing here: save_related hands everything to the services at once."""

    def save_formset(self, request, form, formset, change):
        """Nothing here: see save_related."""

    def save_related(self, request, form, formsets, change):
        data, sources = build_patient_data(form, formsets)
        reason = form.cleaned_data.get("change_reason", "")
        before = form.instance.version
        try:
            if change:
                patient = update_patient(
                    patient=form.instance,
                    data=data,
                    expected_version=form.cleaned_data.get("expected_version"),
                    actor=request.user,
                    reason=reason,
                )
            else:
                patient = register_patient(data=data, actor=request.user, reason=reason)
        except (ValidationError, PatientConflict) as exc:
            raise ServiceRejected(route_service_errors(error_messages(exc), form, sources)) from exc
        # The admin redirects and logs with form.instance: make it the saved patient.
        form.instance.pk = patient.pk
        form.instance.refresh_from_db()
        form.versions = (before, patient.version)

    def construct_change_message(self, request, form, formsets, add=False):
        # The formsets were never saved, so Django's own message has nothing to describe.
        before, after = getattr(form, "versions", (None, form.instance.version))
        if add:
            text = "Registered"
        elif before == after:
            text = "No changes"
        else:
            text = f"Version {before} → {after}"
        reason = form.cleaned_data.get("change_reason")
        return f"{text}: {reason}" if reason else text

    # -- delete and history ----------------------------------------------------------

    def delete_view(self, request, object_id, extra_context=None):
        """The change page's "Delete": a soft delete with a reason, never a row delete."""
        patient = self.get_object(request, unquote(object_id))
        if patient is None:
            raise Http404("No such patient.")
        if not self.has_delete_permission(request, patient):
            raise PermissionDenied
        response = confirm_with_reason(
            self, request, [patient], title="Delete patient", done="Deleted", apply=delete_patient
        )
        return response or HttpResponseRedirect(reverse("admin:patients_patient_changelist"))

    def delete_model(self, request, obj):
        raise PermissionDenied("Patients are soft-deleted (delete_patient) or purged, never deleted here.")

    def delete_queryset(self, request, queryset):
        raise PermissionDenied("Patients are soft-deleted (delete_patient) or purged, never deleted here.")

    def history_view(self, request, object_id, extra_context=None):
        pk = _pk_or_404(Patient, object_id)
        self._note(request, "history", Patient.all_objects.filter(pk=pk))
        context = {"child_history": _child_history(pk), **(extra_context or {})}
        return super().history_view(request, object_id, context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            # A revert would write the patient row directly, past the services.
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return True


def _pk_or_404(model, object_id: str):
    """The primary key an admin URL names; 404 when it cannot be one (simple-history's
    history view would hand "abc" to the database: a 500)."""
    try:
        return model._meta.pk.to_python(unquote(object_id))
    except ValidationError:
        raise Http404(f"No such {model._meta.verbose_name}.") from None


@admin.register(Organization)
class OrganizationAdmin(SimpleHistoryAdmin):
    list_display = ("name", "identifier_system", "active", "patient_count")
    list_filter = ("active",)
    search_fields = ("name", "identifier_system")
    readonly_fields = ("uuid",)

    def get_queryset(self, request):
        live = Q(patients__deleted_at__isnull=True)
        return super().get_queryset(request).annotate(patient_count=Count("patients", filter=live))

    @admin.display(description="live patients", ordering="patient_count")
    def patient_count(self, obj: Organization) -> int:
        return obj.patient_count

    def history_view(self, request, object_id, extra_context=None):
        _pk_or_404(Organization, object_id)
        return super().history_view(request, object_id, extra_context)
