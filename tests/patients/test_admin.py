"""The patient admin's change form: every save goes through the services, and what they
refuse comes back as form errors. Also its history pages and who may use it."""

from dataclasses import replace
from datetime import date, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from patients.data import LinkData
from patients.models import Link, Organization, Patient
from patients.services import patient_to_data, register_patient, update_patient
from tests.factories import patient_data
from tests.patients.admin_pages import (
    add_rows,
    form_data,
    full_new_patient_form,
    inline_form,
    main_form,
    new_patient_form,
    url,
)

# Whitenoise warns that `collectstatic` has not run; these tests do not serve static files.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


# -- add and change go through the services -------------------------------------------


def test_add_registers_through_the_service(client, clerk):
    client.force_login(clerk)

    response = client.post(url("add"), full_new_patient_form(client))

    assert response.status_code == 302
    patient = Patient.objects.get()
    assert patient.version == 1
    assert patient.created_by == clerk
    name = patient.names.get()
    assert (name.family, name.given, name.primary) == ("Núñez", ["José", "María"], True)
    assert patient.contacts.get().normalized_value == "+16175550100"
    assert patient.identifiers.get().value == "A-1"
    record = patient.history.get()
    assert (record.history_user, record.history_change_reason) == (clerk, "walk-in")
    assert LogEntry.objects.get(object_id=str(patient.pk)).get_change_message() == "Registered: walk-in"


def test_change_bumps_version_and_records_who_and_why(client, clerk, smith):
    client.force_login(clerk)
    name_id = smith.names.get().pk
    data = form_data(client.get(url("change", smith.pk)))
    data.update(birth_date="1980-03-05", change_reason="birth date typo")
    add_rows(data, "contacts", {"system": "email", "value": "John.Smith@Example.ORG"})

    response = client.post(url("change", smith.pk), data)

    assert response.status_code == 302
    smith.refresh_from_db()
    assert (smith.version, smith.birth_date) == (2, date(1980, 3, 5))
    assert smith.contacts.get(system="email").normalized_value == "john.smith@example.org"
    assert smith.names.get().pk == name_id  # unchanged rows are kept, not rewritten
    record = smith.history.latest()
    assert (record.history_user, record.history_change_reason) == (clerk, "birth date typo")


def test_saving_an_unchanged_form_keeps_the_version(client, clerk, smith):
    client.force_login(clerk)

    response = client.post(url("change", smith.pk), form_data(client.get(url("change", smith.pk))))

    assert response.status_code == 302
    smith.refresh_from_db()
    assert smith.version == 1
    assert smith.history.count() == 1


def test_removing_a_row_in_an_inline_removes_it(client, clerk, smith):
    client.force_login(clerk)
    data = form_data(client.get(url("change", smith.pk)))
    data["contacts-0-DELETE"] = "on"

    assert client.post(url("change", smith.pk), data).status_code == 302
    assert not smith.contacts.exists()


def test_see_also_link_to_another_patient(client, clerk, smith):
    other = register_patient(data=patient_data(family="Smyth", mrn="78"), actor=clerk)
    client.force_login(clerk)
    data = form_data(client.get(url("change", smith.pk)))
    add_rows(data, "links", {"other": str(other.pk), "type": "seealso", "reason": "same person?"})

    assert client.post(url("change", smith.pk), data).status_code == 302
    assert Link.objects.get(patient=smith).other == other
    assert Link.objects.get(patient=other).other == smith  # the service keeps seealso symmetric


# -- what the services refuse comes back as form errors --------------------------------


def test_stale_expected_version_is_a_form_error_and_changes_nothing(client, clerk, steward, smith):
    client.force_login(clerk)
    data = form_data(client.get(url("change", smith.pk)))
    moved = replace(patient_to_data(smith), birth_date=date(1981, 1, 1))
    update_patient(patient=smith, data=moved, expected_version=1, actor=steward)
    data["gender"] = "female"

    response = client.post(url("change", smith.pk), data)

    assert response.status_code == 200
    assert "version 2, not 1" in " ".join(main_form(response).non_field_errors())
    smith.refresh_from_db()
    assert (smith.version, smith.gender) == (2, "male")


def test_duplicate_identifier_names_the_patient_who_holds_it(client, clerk, smith):
    client.force_login(clerk)

    response = client.post(url("add"), full_new_patient_form(client, mrn="77"))

    assert response.status_code == 200
    errors = " ".join(inline_form(response, "identifiers").non_field_errors())
    assert "already belongs to patient" in errors
    assert url("change", smith.pk) in errors
    assert url("change", smith.pk) in response.content.decode()
    assert Patient.all_objects.count() == 1


def test_birth_date_in_the_future_is_a_form_error(client, clerk):
    client.force_login(clerk)
    tomorrow = timezone.localdate() + timedelta(days=1)

    response = client.post(url("add"), full_new_patient_form(client, birth_date=tomorrow.isoformat()))

    assert response.status_code == 200
    assert main_form(response).errors["birth_date"] == ["The birth date is in the future."]
    assert not Patient.all_objects.exists()


def test_patient_without_a_name_is_refused(client, clerk):
    client.force_login(clerk)

    response = client.post(url("add"), new_patient_form(client))

    assert response.status_code == 200
    assert main_form(response).non_field_errors() == ["Names: At least one name is required."]
    assert not Patient.all_objects.exists()


def test_name_row_without_any_name_part_is_refused(client, clerk):
    client.force_login(clerk)
    data = new_patient_form(client)
    add_rows(data, "names", {"use": "official", "text": "   "})

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert inline_form(response, "names").errors["family"] == [
        "A name needs a family name, a given name or a text."
    ]


def test_bad_phone_is_an_error_on_its_row(client, clerk):
    client.force_login(clerk)
    data = full_new_patient_form(client)
    data["contacts-0-value"] = "call reception"

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert inline_form(response, "contacts").errors["value"] == ["'call reception' is not a phone number."]
    assert not Patient.all_objects.exists()


@pytest.mark.parametrize(
    ("prefix", "row", "field", "message"),
    [
        ("identifiers", {"system": "hospital A"}, "system", "'hospital A' is not a URI"),
        ("names", {"period_start": "2020-01-02", "period_end": "2020-01-01"}, "period_end", "ends before"),
        ("contacts", {"rank": "0"}, "rank", "The rank starts at 1."),
    ],
)
def test_bad_child_row_is_an_error_on_its_row(client, clerk, prefix, row, field, message):
    client.force_login(clerk)
    data = full_new_patient_form(client)
    data.update({f"{prefix}-0-{key}": value for key, value in row.items()})

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert message in " ".join(inline_form(response, prefix).errors[field])
    assert "Constraint" not in response.content.decode()
    assert not Patient.all_objects.exists()


# -- history ---------------------------------------------------------------------------


def test_history_page_shows_who_changed_the_patient_and_its_rows(client, clerk, smith):
    client.force_login(clerk)
    data = form_data(client.get(url("change", smith.pk)))
    data["contacts-0-value"] = "617 555 0111"
    data["change_reason"] = "new phone"
    assert client.post(url("change", smith.pk), data).status_code == 302

    response = client.get(url("history", smith.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert "new phone" in page
    assert "phone: 617 555 0111" in page
    reasons = {r.history_change_reason for r in response.context["child_history"]}
    assert {"seed", "new phone"} <= reasons


def test_history_revert_is_refused(client, clerk, smith):
    client.force_login(clerk)
    record = smith.history.get()
    view = reverse("admin:patients_patient_simple_history", args=[smith.pk, record.history_id])

    assert client.get(view).status_code == 200
    assert client.post(view, {"gender": "female"}).status_code == 403
    smith.refresh_from_db()
    assert smith.gender == "male"


# -- who may use the admin -------------------------------------------------------------


def test_outsider_is_sent_to_the_login_page(client, outsider, smith):
    client.force_login(outsider)

    response = client.get(url("changelist"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert client.get(url("change", smith.pk)).status_code == 302


def test_auditor_can_read_but_not_write(client, auditor, smith):
    client.force_login(auditor)

    assert client.get(url("changelist")).status_code == 200
    page = client.get(url("change", smith.pk))
    assert page.status_code == 200
    assert client.get(url("add")).status_code == 403
    assert client.post(url("change", smith.pk), {}).status_code == 403


def test_organization_admin(client, admin_user, clerk, smith):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:patients_organization_add"),
        {"name": "Mercy Hospital", "identifier_system": "urn:oid:1.2.3.9", "active": "on"},
    )
    assert response.status_code == 302
    assert Organization.objects.get().name == "Mercy Hospital"

    client.force_login(clerk)
    assert client.get(reverse("admin:patients_organization_changelist")).status_code == 200
    assert client.get(reverse("admin:patients_organization_add")).status_code == 403


def test_merge_links_are_shown_read_only_and_kept_on_save(client, clerk, smith, nunez):
    # Written directly: the merge service (matching app) is what creates these links.
    # (A survivor's "replaces" link: a merged-away record itself can no longer be saved.)
    Link.objects.create(patient=smith, other=nunez, type="replaces")
    client.force_login(clerk)

    page = client.get(url("change", smith.pk))

    assert "Replaces" in page.content.decode()
    assert not inline_form(page, "links").instance.pk  # only the empty extra row: not editable here
    data = form_data(page)
    data["change_reason"] = "checked"
    data["gender"] = "other"
    assert client.post(url("change", smith.pk), data).status_code == 302
    assert Link.objects.filter(patient=smith, type="replaces").exists()


def test_rows_a_user_may_only_view_are_kept_when_the_patient_is_saved(client, clerk, smith, nunez):
    # Names and links are view-only for this user: their read-only rows post nothing
    # back, and must not be taken for "all names removed".
    linked = replace(patient_to_data(smith), links=(LinkData(other=nunez.uuid),))
    update_patient(patient=smith, data=linked, expected_version=1, actor=clerk)
    user = User.objects.create_user("names-viewer", is_staff=True)
    codenames = ["view_patient", "change_patient", "view_name", "view_identifier", "change_identifier"]
    codenames += ["view_address", "change_address", "view_contact", "change_contact", "view_link"]
    permissions = Permission.objects.filter(content_type__app_label="patients", codename__in=codenames)
    user.user_permissions.add(*permissions)
    client.force_login(user)
    data = form_data(client.get(url("change", smith.pk)))
    data["gender"] = "other"

    assert client.post(url("change", smith.pk), data).status_code == 302
    smith.refresh_from_db()
    assert smith.gender == "other"
    assert smith.names.get().family == "Smith"
    assert smith.links.get().other == nunez
