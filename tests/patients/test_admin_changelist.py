"""The patient changelist: columns, search, filters, and the soft delete / restore /
purge actions."""

from dataclasses import replace

import pytest

from patients.models import Name, Patient
from patients.services import delete_patient, patient_to_data, register_patient, update_patient
from tests.factories import OrganizationFactory, patient_data
from tests.patients.admin_pages import action, form_data, inline_form, listed, offered_actions, url

# Whitenoise warns that `collectstatic` has not run; these tests do not serve static files.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


# -- the changelist --------------------------------------------------------------------


def test_changelist_columns(client, clerk, smith, nunez):
    client.force_login(clerk)

    response = client.get(url("changelist"))

    assert listed(response) == {smith.pk, nunez.pk}
    page = response.content.decode()
    for text in ("John Smith", "José Núñez", "March 4, 1980", ">77<", ">78<", "female"):
        assert text in page


@pytest.mark.parametrize(
    "term",
    ["jose nunez", "NÚÑEZ", "Núñez José", "78", "(617) 555-0199", "+1 617 555 0199", "5550199"],
)
def test_search_by_name_identifier_or_phone(client, clerk, smith, nunez, term):
    client.force_login(clerk)

    assert listed(client.get(url("changelist"), {"q": term})) == {nunez.pk}


def test_search_without_match_lists_nothing(client, clerk, smith, nunez):
    client.force_login(clerk)

    assert listed(client.get(url("changelist"), {"q": "Smith José"})) == set()


def test_filters(client, clerk, smith, nunez):
    gone = register_patient(data=patient_data(family="Gone", mrn="79"), actor=clerk)
    delete_patient(patient=gone, actor=clerk, reason="test")
    organization = OrganizationFactory()
    update_patient(
        patient=smith,
        data=replace(patient_to_data(smith), managing_organization=organization.uuid),
        expected_version=1,
        actor=clerk,
    )
    client.force_login(clerk)

    def ids(**params):
        return listed(client.get(url("changelist"), params))

    assert ids() == {smith.pk, nunez.pk}
    assert ids(deleted="yes") == {gone.pk}
    assert ids(deleted="all") == {smith.pk, nunez.pk, gone.pk}
    assert ids(gender="female") == {nunez.pk}
    assert ids(active__exact="0") == set()
    assert ids(managing_organization__id__exact=str(organization.pk)) == {smith.pk}


def test_changelist_query_count_does_not_grow_with_rows(client, clerk, django_assert_max_num_queries):
    def register(count: int, start: int) -> None:
        for n in range(start, start + count):
            register_patient(data=patient_data(family=f"Family{n}", mrn=f"M{n}", phone=None), actor=clerk)

    register(2, 0)
    client.force_login(clerk)
    with django_assert_max_num_queries(14):  # 10, and the audit record (4)
        assert len(listed(client.get(url("changelist")))) == 2
    register(20, 2)
    with django_assert_max_num_queries(14):  # 10, and the audit record (4)
        assert len(listed(client.get(url("changelist")))) == 22


# -- soft delete, restore, purge -------------------------------------------------------


def test_soft_delete_asks_for_a_reason_then_records_who_and_why(client, clerk, smith):
    client.force_login(clerk)

    confirm = action(client, "soft_delete_selected", [smith], index="0")
    assert confirm.status_code == 200
    assert "reason" in confirm.context["form"].fields
    refused = action(client, "soft_delete_selected", [smith], confirm="yes", reason="")
    assert refused.context["form"].errors["reason"]
    assert not Patient.all_objects.get(pk=smith.pk).is_deleted

    response = action(client, "soft_delete_selected", [smith], confirm="yes", reason="registered twice")

    assert response.status_code == 302
    smith = Patient.all_objects.get(pk=smith.pk)
    assert (smith.is_deleted, smith.deleted_by) == (True, clerk)
    record = smith.history.latest()
    assert (record.history_user, record.history_change_reason) == (clerk, "registered twice")


def test_restore_needs_the_restore_permission(client, clerk, steward, smith):
    delete_patient(patient=smith, actor=clerk, reason="registered twice")
    client.force_login(clerk)
    assert "restore_selected" not in offered_actions(client, deleted="yes")
    action(client, "restore_selected", [smith], query="?deleted=yes", confirm="yes", reason="oops")
    assert Patient.all_objects.get(pk=smith.pk).is_deleted

    client.force_login(steward)
    response = action(client, "restore_selected", [smith], query="?deleted=yes", confirm="yes", reason="oops")

    assert response.status_code == 302
    smith = Patient.all_objects.get(pk=smith.pk)
    assert not smith.is_deleted
    record = smith.history.latest()
    assert (record.history_user, record.history_change_reason) == (steward, "oops")
    assert smith.identifiers.get().live


def test_delete_button_on_the_change_page_is_a_soft_delete(client, clerk, smith):
    client.force_login(clerk)

    assert client.get(url("delete", smith.pk)).status_code == 200
    response = client.post(url("delete", smith.pk), {"confirm": "yes", "reason": "test record"})

    assert response.status_code == 302
    smith = Patient.all_objects.get(pk=smith.pk)
    assert smith.is_deleted
    assert smith.history.latest().history_change_reason == "test record"


def test_deleted_patient_is_read_only(client, clerk, smith):
    client.force_login(clerk)
    data = form_data(client.get(url("change", smith.pk)))
    delete_patient(patient=smith, actor=clerk, reason="test")

    page = client.get(url("change", smith.pk))

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert 'name="change_reason"' not in page.content.decode()
    assert inline_form(page, "names").instance.family == "Smith"  # its rows are still shown
    assert client.post(url("change", smith.pk), data).status_code == 403


def test_clerk_cannot_purge(client, clerk, smith):
    delete_patient(patient=smith, actor=clerk, reason="registered twice")
    client.force_login(clerk)
    assert offered_actions(client, deleted="yes") == {"", "soft_delete_selected"}

    action(client, "purge_selected", [smith], query="?deleted=yes", confirm="yes", reason="gone")

    assert Patient.all_objects.filter(pk=smith.pk).exists()


def test_superuser_purges_a_deleted_patient_with_an_audited_reason(client, admin_user, clerk, smith):
    name_id = smith.names.get().pk
    delete_patient(patient=smith, actor=clerk, reason="registered twice")
    client.force_login(admin_user)

    response = action(
        client, "purge_selected", [smith], query="?deleted=yes", confirm="yes", reason="erasure request 12"
    )

    assert response.status_code == 302
    assert not Patient.all_objects.filter(pk=smith.pk).exists()
    gone = Patient.history.get(id=smith.pk, history_type="-")
    assert (gone.history_user, gone.history_change_reason) == (admin_user, "erasure request 12")
    name_gone = Name.history.get(id=name_id, history_type="-")
    assert name_gone.history_change_reason == "erasure request 12"


def test_purge_refuses_a_live_patient(client, admin_user, smith):
    client.force_login(admin_user)

    response = action(client, "purge_selected", [smith], confirm="yes", reason="oops")

    assert response.status_code == 302
    assert Patient.objects.filter(pk=smith.pk).exists()
    messages = [str(m) for m in client.get(response.url).context["messages"]]
    assert any("delete it first" in m for m in messages)
