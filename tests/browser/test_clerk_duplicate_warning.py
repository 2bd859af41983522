"""A clerk adding a patient who is already registered is shown the existing record
first, and creates a new one only with a reason."""

import pytest
from playwright.sync_api import expect

from patients.models import Patient
from patients.services import register_patient
from tests.matching.pages import john

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
    pytest.mark.filterwarnings("ignore:Session-scoped fixtures defined as instance methods"),
]


def test_clerk_is_warned_and_creates_anyway_with_a_reason(log_in, clerk):
    existing = register_patient(data=john(), actor=clerk, reason="seed")

    page = log_in(clerk, "/admin/patients/patient/add/")
    page.select_option("#id_gender", "male")
    page.fill("#id_birth_date", "1980-03-04")
    page.fill("#id_names-0-family", "Smith")
    page.fill("#id_names-0-given", "John")
    page.click("input[name=_save]")

    box = page.locator("#likely-duplicates")
    expect(box).to_contain_text("John Smith")
    expect(box).to_contain_text("Certain")
    expect(box.get_by_role("link", name="Open record")).to_have_attribute(
        "href", f"/admin/patients/patient/{existing.pk}/change/"
    )
    assert Patient.objects.count() == 1

    page.check("#id_confirm_duplicates")
    page.fill("#id_duplicate_reason", "His son, registered under the same name")
    page.click("input[name=_save]")

    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    created = Patient.objects.exclude(pk=existing.pk).get()
    assert created.history.get().history_change_reason.endswith("His son, registered under the same name")
