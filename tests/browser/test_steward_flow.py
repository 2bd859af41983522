"""A steward works the queue in a real browser: open a pair from the queue with the
keyboard, merge it with a survivorship choice, see the survivor, unmerge, and see both
records restored."""

from datetime import date

import pytest
from playwright.sync_api import expect

from matching.models import Merge
from tests.matching.pages import john, jon_smyth_elsewhere, make_pair

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
    # pytest-base-url (a pytest-playwright dependency) on pytest 9.
    pytest.mark.filterwarnings("ignore:Session-scoped fixtures defined as instance methods"),
]


def test_steward_merges_from_the_queue_and_unmerges(log_in, live_server, clerk, steward):
    candidate = make_pair(clerk, first=john(), second=jon_smyth_elsewhere(birth_date=date(1980, 4, 3)))
    left, right = candidate.patient_a, candidate.patient_b

    page = log_in(steward, "/review/")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.locator("#queue")).to_contain_text("John Smith")

    # The keyboard: j focuses the first pair, Enter opens it.
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/review/{left.uuid}/{right.uuid}/")
    expect(page.locator("tr[data-row=birth_date]")).to_contain_text("1980-04-03")
    expect(page.locator("tr[data-row=names]")).to_contain_text("family name: phonetic")

    # Keep the right record, with the left record's birth date and names.
    page.check("input[name=survivor][value=right]")
    page.check("input[name=birth_date][value=left]")
    page.check("input[name=names][value=left]")
    page.fill("#id_reason", "Same man: MRN and phone match, birth date typed day-first")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator(".preview")).to_contain_text("Birth date: 1980-04-03 → 1980-03-04.")
    assert not Merge.objects.exists()

    page.get_by_role("button", name="Merge", exact=True).click()
    page.wait_for_url(f"**/patients/{right.uuid}/")
    expect(page.locator(".messages")).to_contain_text("Merged John Smith (1980-03-04) into")
    expect(page.locator("h1")).to_have_text("John Smith (1980-03-04)")
    expect(page.get_by_role("heading", name="Merged from")).to_be_visible()
    ids = page.locator("section[aria-labelledby=ids-title]")
    expect(ids).to_contain_text("77")
    expect(ids).to_contain_text("A-1")

    # The merge history, and undo.
    page.get_by_role("link", name="Merges", exact=True).click()
    page.locator("a[data-row-link]").first.click()
    expect(page.get_by_role("heading", name="Undo this merge")).to_be_visible()
    page.fill("#id_reason", "Father and son after all")
    page.get_by_role("button", name="Unmerge").click()
    expect(page.locator(".messages")).to_contain_text("are separate records again")
    expect(page.locator("h1")).to_contain_text("unmerged")

    page.get_by_role("link", name="Jon Smyth (1980-04-03)").click()
    expect(page.locator("h1")).to_have_text("Jon Smyth (1980-04-03)")
    expect(page.locator("section[aria-labelledby=ids-title]")).not_to_contain_text("77")
    expect(page.locator(".facts")).to_contain_text("active")
    page.go_back()
    page.get_by_role("link", name="John Smith (1980-03-04)").click()
    expect(page.locator("h1")).to_have_text("John Smith (1980-03-04)")
    expect(page.locator(".banner")).to_have_count(0)  # not "merged into" any more
    expect(page.locator("section[aria-labelledby=ids-title]")).to_contain_text("77")
