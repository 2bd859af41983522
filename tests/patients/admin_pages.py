"""Driving the admin change form and changelist through the test client, as a browser would."""

from django import forms
from django.urls import reverse

from tests.factories import MRN_SYSTEM


def url(view: str, *args) -> str:
    return reverse(f"admin:patients_patient_{view}", args=args)


def form_data(response) -> dict:
    """What a browser posts back for the admin form on ``response``: the main form and
    each inline's stored rows (no extra rows; add them with ``add_rows``)."""
    data: dict = {}

    def put(form) -> None:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field.widget, forms.CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = "" if value is None else str(value)

    put(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in ("INITIAL_FORMS", "MIN_NUM_FORMS", "MAX_NUM_FORMS"):
            data[f"{formset.prefix}-{name}"] = str(management.initial[name])
        data[f"{formset.prefix}-TOTAL_FORMS"] = str(management.initial["INITIAL_FORMS"])
        for form in formset.initial_forms:
            put(form)
    return data


def add_rows(data: dict, prefix: str, *rows: dict) -> dict:
    start = int(data[f"{prefix}-TOTAL_FORMS"])
    for index, row in enumerate(rows, start):
        for field, value in row.items():
            data[f"{prefix}-{index}-{field}"] = value
    data[f"{prefix}-TOTAL_FORMS"] = str(start + len(rows))
    return data


def new_patient_form(client, **main) -> dict:
    data = form_data(client.get(url("add")))
    data.update({"gender": "female", "birth_date": "1990-05-06", "change_reason": "walk-in", **main})
    return data


def full_new_patient_form(client, *, mrn: str = "A-1", **main) -> dict:
    data = new_patient_form(client, **main)
    add_rows(data, "names", {"family": " Núñez ", "given": "José, María", "use": "official"})
    add_rows(data, "identifiers", {"system": MRN_SYSTEM, "value": mrn, "type": "MR"})
    add_rows(data, "addresses", {"line": "1 Main St", "city": "Boston", "postal_code": "02134"})
    add_rows(data, "contacts", {"system": "phone", "value": "(617) 555-0100", "use": "mobile"})
    return data


def inline_form(response, prefix: str, index: int = 0):
    formset = next(i.formset for i in response.context["inline_admin_formsets"] if i.formset.prefix == prefix)
    return formset.forms[index]


def main_form(response):
    return response.context["adminform"].form


def action(client, name: str, patients, *, query: str = "", **extra):
    data = {"action": name, "_selected_action": [p.pk for p in patients], **extra}
    return client.post(url("changelist") + query, data)


def offered_actions(client, **params) -> set[str]:
    response = client.get(url("changelist"), params)
    return set(dict(response.context["action_form"].fields["action"].choices))


def listed(response) -> set[int]:
    return {p.pk for p in response.context["cl"].result_list}
