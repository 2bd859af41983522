"""Who may open the steward pages: stewards yes; clerks, auditors and outsiders no
(the patient page is for everyone who may view patients)."""

import pytest
from django.urls import reverse

from tests.matching.pages import NO_STATIC_WARNING, make_pair, pair_url

pytestmark = pytest.mark.filterwarnings(NO_STATIC_WARNING)


@pytest.fixture
def candidate(clerk):
    return make_pair(clerk)


def steward_pages(candidate) -> list[str]:
    return ["/", "/review/", pair_url(candidate), "/merges/"]


def test_urls():
    assert reverse("matching:dashboard") == "/"
    assert reverse("matching:queue") == "/review/"
    assert reverse("matching:merges") == "/merges/"


def test_anonymous_users_are_sent_to_the_login_page(client, candidate):
    for url in [*steward_pages(candidate), f"/patients/{candidate.patient_a.uuid}/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith("/admin/login/?next="), url


@pytest.mark.parametrize("persona", ["clerk", "auditor", "outsider", "integrator"])
def test_other_roles_are_refused_the_steward_pages(client, candidate, persona, request):
    client.force_login(request.getfixturevalue(persona))

    for url in steward_pages(candidate):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "You may not open this page" in response.content.decode()


@pytest.mark.parametrize("persona", ["clerk", "auditor", "outsider"])
def test_other_roles_cannot_decide(client, candidate, persona, request):
    client.force_login(request.getfixturevalue(persona))

    for action in ("merge", "link", "not-duplicate", "claim"):
        assert client.post(pair_url(candidate, action), {"notdup-reason": "x"}).status_code == 403
    assert client.post("/review/next/").status_code == 403
    candidate.refresh_from_db()
    assert candidate.status == "open" and candidate.claimed_by is None


def test_steward_opens_every_steward_page(client, candidate, steward):
    client.force_login(steward)

    for url in steward_pages(candidate):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    ("persona", "status"), [("clerk", 200), ("steward", 200), ("auditor", 200), ("outsider", 403)]
)
def test_patient_page_is_for_those_who_may_view_patients(client, candidate, persona, status, request):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(f"/patients/{candidate.patient_a.uuid}/").status_code == status


def test_unknown_pair_and_patient_are_not_found(client, candidate, steward):
    client.force_login(steward)
    unknown = "00000000-0000-4000-8000-000000000000"

    assert client.get(f"/review/{candidate.patient_a.uuid}/{unknown}/").status_code == 404
    assert client.get(f"/patients/{unknown}/").status_code == 404
    assert client.get(f"/merges/{unknown}/").status_code == 404


def test_steward_navigation_shows_steward_links_only_to_stewards(client, candidate, steward, clerk):
    client.force_login(clerk)
    assert "Review queue" not in client.get("/search/").content.decode()
    client.force_login(steward)
    assert "Review queue" in client.get("/search/").content.decode()
