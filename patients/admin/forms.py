"""The patient admin's forms, and the bridge between them and the write services.

The admin never saves a model form. ``build_patient_data`` turns the validated main
form and inline formsets into one ``PatientData`` for ``register_patient`` /
``update_patient``; ``route_service_errors`` puts what the services reject back on the
form rows the clerk typed it in. The forms themselves only collect input and pre-empt
a few model constraints whose database wording would be meaningless to a clerk.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.urls import reverse
from django.utils.html import format_html

from patients.data import AddressData, ContactData, IdentifierData, LinkData, NameData, PatientData
from patients.errors import IdentifierConflict, PatientConflict, VersionConflict
from patients.models import Address, Contact, Identifier, Link, Name, Patient
from patients.services import patient_to_data

# {form prefix ("" for the main form): {field name or None: [messages]}}
ServiceErrors = dict[str, dict[str | None, list[str]]]

# The PatientData collection each inline model feeds.
COLLECTIONS: dict[type, tuple[str, type]] = {
    Name: ("names", NameData),
    Identifier: ("identifiers", IdentifierData),
    Address: ("addresses", AddressData),
    Contact: ("contacts", ContactData),
    Link: ("links", LinkData),
}

# The request attribute that carries the services' errors to the second rendering.
ERRORS_ATTR = "_patient_admin_service_errors"

_CHILD_PATH = re.compile(r"^(?P<collection>[a-z_]+)\[(?P<index>\d+)\](?:\.(?P<field>\w+))?$")


def service_errors_for(request) -> ServiceErrors:
    """Errors the services raised on the first attempt of this request (see changeform_view)."""
    return getattr(request, ERRORS_ATTR, {})


class ServiceErrorsMixin:
    """Adds the errors the services raised on the first attempt of this same POST.

    ``PatientAdmin`` binds ``service_errors`` per request (see ``get_form`` and the
    inlines' ``get_formset``); a form finds its own by its prefix.
    """

    service_errors: ServiceErrors = {}

    def add_service_errors(self) -> None:
        for field, messages in self.service_errors.get(self.prefix or "", {}).items():
            for message in messages:
                if field is None and message in self.non_field_errors():
                    continue  # the early version check already said it
                self.add_error(field, message)


class PatientForm(ServiceErrorsMixin, forms.ModelForm):
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    change_reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text="Why you register or change this patient; kept in the history.",
    )

    class Meta:
        model = Patient
        fields = [*PatientData.SCALAR_FIELDS, "managing_organization"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "expected_version" in self.fields and self.instance.pk:
            # The version this page was read at: a stale one is a conflict, not an overwrite.
            self.fields["expected_version"].initial = self.instance.version
            self.fields["expected_version"].required = True

    def clean_multiple_birth_order(self):
        order = self.cleaned_data.get("multiple_birth_order")
        if order is not None and order < 1:
            raise ValidationError("The birth order starts at 1.")
        return order

    def clean(self):
        cleaned = super().clean()
        # As in the services, a date of death means deceased (and keeps the
        # "deceased_at implies deceased" constraint from failing in the form).
        if cleaned.get("deceased_at"):
            cleaned["deceased"] = True
            birth_date = cleaned.get("birth_date")
            if birth_date and cleaned["deceased_at"].date() < birth_date:
                self.add_error("deceased_at", "The date of death is before the birth date.")
        # An early, friendly answer; update_patient re-checks under the row lock.
        expected = cleaned.get("expected_version")
        if self.instance.pk and expected is not None and expected != self.instance.version:
            self.add_error(None, VersionConflict(expected=expected, current=self.instance.version).message)
        self.add_service_errors()
        return cleaned


class ChildForm(ServiceErrorsMixin, forms.ModelForm):
    """Base of the inline forms.

    Errors put on a field here also keep the model constraint on that field from
    being reported a second time, in database words ("Constraint ... is violated").
    """

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("period_start"), cleaned.get("period_end")
        if start and end and start > end:
            self.add_error("period_end", "The period ends before it starts.")
        if cleaned.get("rank") is not None and cleaned["rank"] < 1:
            self.add_error("rank", "The rank starts at 1.")
        self.add_service_errors()
        return cleaned


class NameForm(ChildForm):
    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("family") or cleaned.get("given") or cleaned.get("text")) and not self.has_error(
            "family"
        ):
            # On the field: see ChildForm about the "name_not_empty" constraint.
            self.add_error("family", "A name needs a family name, a given name or a text.")
        return cleaned


def _shape(cls, cleaned: dict, **extra):
    """One data item from one inline form's cleaned_data (lists become tuples)."""
    names = {f.name for f in dataclasses.fields(cls)} - extra.keys()
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in cleaned.items() if k in names}
    return cls(**values, **extra)


def _item(model: type, cleaned: dict):
    _, cls = COLLECTIONS[model]
    if model is Link:
        return _shape(cls, cleaned, other=cleaned["other"].uuid)
    return _shape(cls, cleaned)


def build_patient_data(form: PatientForm, formsets) -> tuple[PatientData, dict]:
    """The ``PatientData`` the forms describe, and which form each child item came from.

    Skips empty extra forms and forms marked for deletion. A collection without an
    editable inline (not shown to this user, or view-only) keeps its stored rows:
    leaving it out would delete them.
    """
    patient = form.instance
    values: dict = {f: getattr(patient, f) for f in PatientData.SCALAR_FIELDS}
    organization = patient.managing_organization if patient.managing_organization_id else None
    values["managing_organization"] = organization.uuid if organization else None
    sources: dict[tuple[str, int], forms.Form] = {}
    stored = None
    for model, (collection, _) in COLLECTIONS.items():
        formset = next((fs for fs in formsets if fs.model is model), None)
        if formset is None or not getattr(formset, "editable", True):
            if stored is None:
                stored = patient_to_data(patient) if patient.pk else PatientData()
            values[collection] = getattr(stored, collection)
            continue
        items = []
        for child_form in formset.forms:
            if not child_form.cleaned_data or child_form.cleaned_data.get("DELETE"):
                continue
            sources[(collection, len(items))] = child_form
            items.append(_item(model, child_form.cleaned_data))
        values[collection] = tuple(items)
    return PatientData(**values), sources


def error_messages(exc: ValidationError | PatientConflict) -> dict[str, list]:
    """A service error as {field path: [messages]}; paths as in ``patients.data``."""
    if isinstance(exc, ValidationError):
        return exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    if isinstance(exc, IdentifierConflict):
        existing = exc.existing
        message = format_html(
            'Identifier {}|{} already belongs to patient <a href="{}">{}</a>.',
            exc.system,
            exc.value,
            reverse("admin:patients_patient_change", args=[existing.pk]),
            existing,
        )
        return {exc.field or NON_FIELD_ERRORS: [message]}
    return {exc.field or NON_FIELD_ERRORS: [exc.message]}


def _label(text: str) -> str:
    return text.replace("_", " ").capitalize()


def route_service_errors(messages: dict[str, list], form: PatientForm, sources: dict) -> ServiceErrors:
    """Place each message on the form (and field) the clerk typed the value in."""
    routed: dict[str, dict[str | None, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, texts in messages.items():
        for text in texts:
            prefix, field = "", None
            match = _CHILD_PATH.match(path)
            if path in form.fields:
                field = path
            elif match:
                child, child_field = sources.get((match["collection"], int(match["index"]))), match["field"]
                if child is not None and child_field in child.fields:
                    prefix, field = child.prefix, child_field
                elif child is not None:
                    prefix = child.prefix
                    text = format_html("{}: {}", _label(child_field), text) if child_field else text
                else:
                    where = f"{_label(match['collection'])} #{int(match['index']) + 1}"
                    where += f", {_label(child_field).lower()}" if child_field else ""
                    text = format_html("{}: {}", where, text)
            elif path != NON_FIELD_ERRORS:
                text = format_html("{}: {}", _label(path), text)
            routed[prefix][field].append(text)
    if not routed:
        routed[""][None].append("The registry refused this change.")
    return {prefix: dict(fields) for prefix, fields in routed.items()}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Kept in each patient's history.",
    )
