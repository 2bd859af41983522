"""The search page (/search/): access, free text and fields, htmx fragment vs full page,
form errors, pagination, and a bounded number of queries."""

from datetime import date

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from patients.codes import LinkType
from patients.models import Link, Patient
from patients.services import register_patient
from search.forms import PAGE_SIZE
from search.indexing import reindex_patient
from tests.factories import patient_data

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

URL = "/search/"
HTMX = {"HTTP_HX_REQUEST": "true"}
DASH = "\N{EN DASH}"  # between the first and last row shown


@pytest.fixture
def people(clerk):
    def add(**kwargs):
        return register_patient(data=patient_data(**kwargs), actor=clerk)

    return {
        "john": add(family="Smith", given=("John",), mrn="77"),
        "jane": add(family="Smith", given=("Jane",), gender="female", birth_date=date(1990, 5, 6), mrn="78",
                    phone=None),
        "nunez": add(family="Núñez", given=("José",), gender="female", birth_date=date(1975, 1, 2), mrn="79",
                     phone="617 555 0199", postal_code="02135"),
    }  # fmt: skip


def found(response) -> list[int]:
    return [row.hit.patient_id for row in response.context["rows"]]


def test_url_is_search():
    assert reverse("search:search") == URL


def test_anonymous_user_is_sent_to_the_login_page(client, db):
    response = client.get(URL, {"q": "smith"})

    assert response.status_code == 302
    assert response.url.startswith("/admin/login/?next=/search/")
    assert AuditEvent.objects.get().outcome == "denied"  # the refusal is audited


def test_user_without_view_permission_is_forbidden(client, outsider):
    client.force_login(outsider)

    assert client.get(URL, {"q": "smith"}).status_code == 403


@pytest.mark.parametrize("persona", ["clerk", "steward", "auditor"])
def test_roles_with_view_permission_see_results(client, people, persona, request):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(URL, {"q": "smith"})

    assert response.status_code == 200
    assert set(found(response)) == {people["john"].pk, people["jane"].pk}
    page = response.content.decode()
    assert "John Smith" in page and "Jane Smith" in page


def test_typo_in_name_with_birth_date_finds_the_patient(client, clerk, people):
    client.force_login(clerk)

    response = client.get(URL, {"q": "jon smyth 1980-03-04"})

    assert found(response) == [people["john"].pk]
    row = response.context["rows"][0]
    assert "birth date" in row.badges
    page = response.content.decode()
    assert 'datetime="1980-03-04"' in page
    assert reverse("matching:patient", args=[people["john"].uuid]) in page


def test_accents_are_ignored(client, clerk, people):
    client.force_login(clerk)

    assert found(client.get(URL, {"q": "jose nunez"})) == [people["nunez"].pk]
    assert found(client.get(URL, {"q": "NÚÑEZ"})) == [people["nunez"].pk]


def test_results_show_identifiers_phone_address_and_score(client, clerk, people):
    client.force_login(clerk)

    response = client.get(URL, {"q": "MRN 79"})

    assert found(response) == [people["nunez"].pk]
    row = response.context["rows"][0]
    assert [i.value for i in row.identifiers] == ["79"]
    assert row.phone.value == "617 555 0199"
    assert row.address.postal_code == "02135"
    assert row.badges == ["identifier"]
    page = response.content.decode()
    for text in ("José Núñez", "1975-01-02", "Female", "617 555 0199", "Boston 02135", ">identifier<"):
        assert text in page
    assert f"{row.hit.score:.2f}" in page


def test_structured_fields_search_and_open_more_fields(client, clerk, people):
    client.force_login(clerk)
    fields = {"family": "Smith", "given": "", "birth_date": "06/05/1990", "gender": "female"}

    response = client.get(URL, {"q": "", **fields})

    assert found(response) == [people["jane"].pk]
    assert '<details class="more-fields" open>' in response.content.decode()


def test_given_name_alone_is_searchable(client, clerk, people):
    client.force_login(clerk)

    # "John" sounds like "Jane" (soundex J500), so it may follow: Jane ranks first.
    assert found(client.get(URL, {"given": "jane"}))[0] == people["jane"].pk


def test_htmx_request_gets_the_results_fragment_only(client, clerk, people):
    client.force_login(clerk)

    response = client.get(URL, {"q": "smith"}, **HTMX)

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page and "<form" not in page
    assert "John Smith" in page and "<table" in page
    assert response.templates[0].name == "search/_results.html"
    assert "HX-Request" in response["Vary"]


def test_history_restore_by_htmx_gets_the_full_page(client, clerk, people):
    client.force_login(clerk)

    response = client.get(URL, {"q": "smith"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX)

    assert "<html" in response.content.decode()


def test_plain_get_gets_the_full_page_with_form_and_results(client, clerk, people):
    client.force_login(clerk)

    response = client.get(URL, {"q": "smith"})

    page = response.content.decode()
    assert page.lstrip().startswith("<!doctype html>")
    assert 'hx-get="/search/"' in page and 'action="/search/"' in page and 'method="get"' in page
    assert 'id="results"' in page and "John Smith" in page
    assert "/static/vendor/htmx/htmx.min.js" in page and "/static/css/mpi.css" in page
    assert 'value="smith"' in page  # the form keeps what was typed


def test_empty_page_shows_the_form_and_a_hint_without_searching(
    client, clerk, people, django_assert_max_num_queries
):
    client.force_login(clerk)

    with django_assert_max_num_queries(6):  # session, user, permissions: no search
        response = client.get(URL)

    assert response.status_code == 200
    assert response.context["result"] is None
    assert "Type a name" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"birth_date": "31/31/1980"}, "birth_date"),
        ({"phone": "12"}, "phone"),
        ({"gender": "M"}, "gender"),
        ({"q": "smith", "offset": "-1"}, "offset"),
        ({"q": "smith", "offset": "abc"}, "offset"),
        ({"q": "smith\x00"}, "q"),
    ],
)
def test_unreadable_input_is_a_form_error_not_a_server_error(client, clerk, people, params, field):
    client.force_login(clerk)

    for headers in ({}, HTMX):
        response = client.get(URL, params, **headers)
        assert response.status_code == 200
        assert field in response.context["form"].errors
        assert response.context["result"] is None
        assert 'role="alert"' in response.content.decode()


def test_bad_birth_date_error_names_the_field(client, clerk, people):
    client.force_login(clerk)

    page = client.get(URL, {"q": "smith", "birth_date": "31/31/1980"}).content.decode()

    assert "Birth date" in page and "is not a date" in page
    assert 'aria-invalid="true"' in page


def test_no_match_says_so(client, clerk, people):
    client.force_login(clerk)

    response = client.get(URL, {"q": "zebedee 1901-01-01"})

    assert response.context["rows"] == []
    assert "No patients found" in response.content.decode()


def test_pagination(client, clerk):
    for n in range(PAGE_SIZE + 5):
        register_patient(data=patient_data(given=(f"Given{n:02d}",), mrn=f"P{n}", phone=None), actor=clerk)
    client.force_login(clerk)

    first = client.get(URL, {"q": "smith"})
    second = client.get(URL, {"q": "smith", "offset": str(PAGE_SIZE)}, **HTMX)

    assert len(found(first)) == PAGE_SIZE
    assert len(found(second)) == 5
    assert set(found(first)).isdisjoint(found(second))
    first_page, second_page = first.content.decode(), second.content.decode()
    assert f"{PAGE_SIZE + 5} patients found, showing 1{DASH}{PAGE_SIZE}" in first_page
    assert f"offset={PAGE_SIZE}" in first_page and 'rel="next"' in first_page
    assert 'rel="prev"' not in first_page
    assert f"showing {PAGE_SIZE + 1}{DASH}{PAGE_SIZE + 5}" in second_page
    assert 'rel="prev"' in second_page and "offset=0" in second_page
    assert 'rel="next"' not in second_page


def test_merged_away_patient_is_flagged(client, clerk, people):
    # Set up the merge state directly: the merge service belongs to another slice.
    survivor = people["john"]
    duplicate = register_patient(data=patient_data(mrn="DUP-1", phone=None), actor=clerk)
    Patient.all_objects.filter(pk=duplicate.pk).update(active=False)
    Link.objects.create(patient=duplicate, other=survivor, type=LinkType.REPLACED_BY)
    reindex_patient(Patient.all_objects.get(pk=duplicate.pk))
    client.force_login(clerk)

    response = client.get(URL, {"q": "DUP-1"})

    assert found(response) == [duplicate.pk]
    assert response.context["rows"][0].hit.merged
    assert ">merged<" in response.content.decode()


def test_post_is_not_allowed(client, clerk):
    client.force_login(clerk)

    assert client.post(URL, {"q": "smith"}).status_code == 405


def test_query_count_does_not_grow_with_the_results(client, clerk, django_assert_max_num_queries):
    for n in range(PAGE_SIZE):
        register_patient(data=patient_data(given=(f"Given{n:02d}",), mrn=f"Q{n}"), actor=clerk)
    client.force_login(clerk)

    # session, user, permissions (2), search (1-3), patients + 3 prefetches, the audit
    # record (savepoint, chain lock, insert, release).
    with django_assert_max_num_queries(16):
        assert len(found(client.get(URL, {"q": "smith"}))) == PAGE_SIZE
    with django_assert_max_num_queries(16):
        assert len(found(client.get(URL, {"q": "smith"}, **HTMX))) == PAGE_SIZE
