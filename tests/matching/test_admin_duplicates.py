"""The clerk's "Add patient" warns about likely duplicates before registering, and the
read-only candidate and model admins."""

import pytest
from django.contrib.admin.models import LogEntry

from matching.models import MatchCandidate
from patients.models import Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM
from tests.matching.pages import NO_STATIC_WARNING, john
from tests.patients.admin_pages import add_rows, form_data, new_patient_form, url

pytestmark = pytest.mark.filterwarnings(NO_STATIC_WARNING)


@pytest.fixture
def existing(clerk) -> Patient:
    return register_patient(data=john(), actor=clerk, reason="seed")


def john_again(client, **extra) -> dict:
    """The add form for John Smith, born the same day, with another MRN."""
    data = new_patient_form(client, gender="male", birth_date="1980-03-04", change_reason="walk-in", **extra)
    add_rows(data, "names", {"family": "Smith", "given": "John", "use": "official"})
    add_rows(data, "identifiers", {"system": MRN_SYSTEM, "value": "78", "type": "MR"})
    add_rows(data, "addresses", {"line": "1 Main St", "city": "Boston", "postal_code": "02134"})
    add_rows(data, "contacts", {"system": "phone", "value": "+1 617 555 0100", "use": "home"})
    return data


def test_adding_a_likely_duplicate_shows_it_and_saves_nothing(client, clerk, existing):
    client.force_login(clerk)

    response = client.post(url("add"), john_again(client))

    assert response.status_code == 200
    assert Patient.objects.count() == 1
    page = response.content.decode()
    assert "Likely duplicates: is this one of these patients?" in page
    assert "almost certainly registered already" in page
    assert url("change", existing.pk) in page  # open the existing record
    assert f"/patients/{existing.uuid}/" in page
    rows = response.context["likely_duplicates"]
    assert [row["patient"] for row in rows] == [existing]
    assert rows[0]["grade"] == "certain"
    assert response.context["duplicates_seen"] == str(existing.uuid)
    # What the clerk typed is still there.
    assert response.context["adminform"].form["birth_date"].value() == "1980-03-04"


def test_create_anyway_needs_a_reason(client, clerk, existing):
    client.force_login(clerk)
    data = john_again(
        client, confirm_duplicates="1", duplicate_reason=" ", duplicates_seen=str(existing.uuid)
    )

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert "Say why you create a new record" in response.content.decode()
    assert Patient.objects.count() == 1
    assert response.context["confirm_duplicates"] is True


def test_create_anyway_with_a_reason_registers_and_records_why(client, clerk, existing):
    client.force_login(clerk)
    data = john_again(
        client,
        confirm_duplicates="1",
        duplicate_reason="his son, same name",
        duplicates_seen=str(existing.uuid),
    )

    response = client.post(url("add"), data)

    assert response.status_code == 302
    created = Patient.objects.exclude(pk=existing.pk).get()
    reason = created.history.get().history_change_reason
    assert reason == "walk-in. Created despite 1 likely duplicate (certain): his son, same name"
    assert created.names.get().history.get().history_change_reason == reason
    message = LogEntry.objects.get(object_id=str(created.pk)).get_change_message()
    assert "his son, same name" in message
    # The registration itself still opens the candidate for the stewards.
    assert MatchCandidate.objects.pair(existing, created).exists()


def test_a_duplicate_found_after_the_confirmation_warns_again(client, clerk, existing):
    client.force_login(clerk)
    data = john_again(client, confirm_duplicates="1", duplicate_reason="his son", duplicates_seen="")

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert "Another likely duplicate was found since you confirmed" in response.content.decode()
    assert Patient.objects.count() == 1


def test_a_possible_match_warns_in_milder_words(client, clerk, existing):
    client.force_login(clerk)
    # Same name, day and month of the birth date transposed, nothing else to go on.
    data = new_patient_form(client, gender="male", birth_date="1980-04-03", change_reason="walk-in")
    add_rows(data, "names", {"family": "Smith", "given": "John", "use": "official"})

    response = client.post(url("add"), data)

    rows = response.context["likely_duplicates"]
    assert rows and all(row["grade"] != "certain" for row in rows)
    assert "may be registered already" in response.content.decode()
    assert Patient.objects.count() == 1


def test_a_new_person_is_registered_without_a_warning(client, clerk, existing):
    client.force_login(clerk)
    data = new_patient_form(client)
    add_rows(data, "names", {"family": "Okafor", "given": "Chidi"})

    response = client.post(url("add"), data)

    assert response.status_code == 302
    assert Patient.objects.count() == 2


def test_invalid_input_is_reported_as_before(client, clerk, existing):
    client.force_login(clerk)
    data = john_again(client)
    add_rows(data, "identifiers", {"system": "not a uri", "value": "1"})

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert "is not a URI" in response.content.decode()
    assert "likely_duplicates" not in response.context
    assert Patient.objects.count() == 1


def test_editing_an_existing_patient_does_not_warn(client, clerk, existing):
    twin = register_patient(data=john(mrn="79", given=("Jon",)), actor=clerk)
    client.force_login(clerk)
    data = form_data(client.get(url("change", twin.pk)))
    data["change_reason"] = "typo"

    response = client.post(url("change", twin.pk), data)

    assert response.status_code == 302


def test_candidate_and_model_admins_are_read_only_for_stewards(client, clerk, steward, existing):
    register_patient(data=john(mrn="79", given=("Jon",)), actor=clerk)
    candidate = MatchCandidate.objects.get()
    client.force_login(steward)

    assert client.get("/admin/matching/matchcandidate/").status_code == 200
    page = client.get(f"/admin/matching/matchcandidate/{candidate.pk}/change/").content.decode()
    assert "Open the candidate page" in page
    assert client.get("/admin/matching/matchcandidate/add/").status_code == 403
    assert client.get("/admin/matching/matchmodelversion/").status_code == 403  # no view permission

    client.force_login(clerk)
    assert client.get("/admin/matching/matchcandidate/").status_code == 403


def test_an_identifier_held_by_another_patient_is_refused_before_any_warning(client, clerk, existing):
    client.force_login(clerk)
    data = new_patient_form(client, gender="male", birth_date="1980-03-04", change_reason="walk-in")
    add_rows(data, "names", {"family": "Smith", "given": "John"})
    add_rows(data, "identifiers", {"system": MRN_SYSTEM, "value": "77", "type": "MR"})

    response = client.post(url("add"), data)

    assert response.status_code == 200
    assert "already belongs to patient" in response.content.decode()
    assert "likely_duplicates" not in response.context
    assert Patient.objects.count() == 1
