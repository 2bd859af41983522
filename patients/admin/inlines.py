"""The patient's child rows as admin inlines.

The inline formsets are never saved: ``PatientAdmin.save_related`` hands their
cleaned data to the services. Inlines therefore read every row of their patient,
soft-deleted patients included, and turn read-only when the patient is deleted.
"""

from django.contrib import admin

from patients.admin.forms import ChildForm, NameForm, service_errors_for
from patients.codes import LinkType
from patients.models import Address, Contact, Identifier, Link, Name, Patient


class PatientChildInline(admin.TabularInline):
    form = ChildForm
    extra = 1

    def get_queryset(self, request):
        # all_objects: the default manager hides the rows of soft-deleted patients.
        queryset = self.model.all_objects.all()
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def get_formset(self, request, obj=None, **kwargs):
        form = type(self.form.__name__, (self.form,), {"service_errors": service_errors_for(request)})
        formset = super().get_formset(request, obj, form=form, **kwargs)
        # A formset this user cannot change is not a source of data (see build_patient_data).
        formset.editable = obj is None or self.has_change_permission(request, obj)
        return formset

    def _patient_is_live(self, obj) -> bool:
        return obj is None or not getattr(obj, "is_deleted", False)

    def has_add_permission(self, request, obj=None):
        return self._patient_is_live(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._patient_is_live(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._patient_is_live(obj) and super().has_delete_permission(request, obj)


class NameInline(PatientChildInline):
    model = Name
    form = NameForm
    fields = ("primary", "use", "family", "given", "prefix", "suffix", "text", "period_start", "period_end")
    ordering = ("-primary", "id")


class IdentifierInline(PatientChildInline):
    model = Identifier
    fields = ("system", "value", "type", "use", "assigner", "period_start", "period_end")
    ordering = ("id",)


class AddressInline(PatientChildInline):
    model = Address
    fields = (
        "primary", "use", "type", "line", "city", "district", "state", "postal_code", "country", "text",
        "period_start", "period_end",
    )  # fmt: skip
    ordering = ("-primary", "id")


class ContactInline(PatientChildInline):
    model = Contact
    fields = ("system", "value", "normalized_value", "use", "rank", "period_start", "period_end")
    readonly_fields = ("normalized_value",)
    ordering = ("system", "rank", "id")


class LinkInline(PatientChildInline):
    """The links a clerk may write; merge links are shown read-only on the patient."""

    model = Link
    fk_name = "patient"
    fields = ("other", "type", "reason")
    raw_id_fields = ("other",)
    ordering = ("id",)
    verbose_name = "link to another record of this person"
    verbose_name_plural = "links (refer / see also)"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(type__in=[LinkType.REFER, LinkType.SEEALSO])

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "other":
            # Existing links may point at a since-deleted patient; the service says so clearly.
            kwargs["queryset"] = Patient.all_objects.all()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "type":
            kwargs["choices"] = [(t.value, t.label) for t in (LinkType.SEEALSO, LinkType.REFER)]
            # An untouched extra row posts the initial value back and so stays empty.
            kwargs["initial"] = LinkType.SEEALSO
        return super().formfield_for_choice_field(db_field, request, **kwargs)
