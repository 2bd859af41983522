"""The patient changelist's search box runs through the search index: typos, identifiers,
rank order, the filters, and deleted patients through the plain search."""

from datetime import date

import pytest
from django.contrib import admin

from patients.models import Patient
from patients.services import delete_patient, register_patient
from search.admin import SearchPatientAdmin
from search.queries import search_patients
from tests.factories import patient_data
from tests.patients.admin_pages import listed, url

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def people(clerk):
    def add(**kwargs):
        return register_patient(data=patient_data(**kwargs), actor=clerk)

    return {
        "john": add(family="Smith", given=("John",), mrn="MRN-1001"),
        "jane": add(family="Smith", given=("Jane",), gender="female", birth_date=date(1990, 5, 6), mrn="M2"),
        "jones": add(
            family="Jones", given=("Mary",), gender="female", mrn="MRN-1003", phone="+1 212 5550123"
        ),
    }


def ordered(response) -> list[int]:
    return [p.pk for p in response.context["cl"].result_list]


def test_the_search_app_registers_the_patient_admin():
    assert isinstance(admin.site._registry[Patient], SearchPatientAdmin)


def test_misspelled_name_finds_smith(client, clerk, people):
    client.force_login(clerk)

    assert listed(client.get(url("changelist"), {"q": "smyth"})) == {people["john"].pk, people["jane"].pk}


def test_identifier_finds_its_patient(client, clerk, people):
    client.force_login(clerk)

    assert listed(client.get(url("changelist"), {"q": "MRN-1003"})) == {people["jones"].pk}
    assert listed(client.get(url("changelist"), {"q": "mrn-1003"})) == {people["jones"].pk}


def test_free_text_with_birth_date(client, clerk, people):
    client.force_login(clerk)

    assert listed(client.get(url("changelist"), {"q": "jon smyth 1980-03-04"})) == {people["john"].pk}


def test_best_match_first_unless_a_column_is_chosen(client, clerk, people):
    client.force_login(clerk)
    expected = [hit.patient_id for hit in search_patients(text="jane smith").hits]
    assert expected[0] == people["jane"].pk and len(expected) > 1

    assert ordered(client.get(url("changelist"), {"q": "jane smith"})) == expected
    # Column 2 is birth_date (after the checkbox and the name): 1980 before 1990.
    by_birth_date = ordered(client.get(url("changelist"), {"q": "jane smith", "o": "2"}))
    assert by_birth_date == [people["john"].pk, people["jane"].pk]


def test_filters_still_apply_to_the_search(client, clerk, people):
    client.force_login(clerk)

    def ids(**params):
        return listed(client.get(url("changelist"), params))

    assert ids(q="smith", gender__exact="female") == {people["jane"].pk}
    assert ids(q="smith", gender__exact="nonsense") == set()
    assert ids(q="smith", active__exact="0") == set()


def test_deleted_patients_are_found_by_the_plain_search(client, clerk, people):
    delete_patient(patient=people["jane"], actor=clerk, reason="registered twice")
    client.force_login(clerk)

    def ids(**params):
        return listed(client.get(url("changelist"), params))

    assert ids(q="smith") == {people["john"].pk}
    assert ids(q="smith", deleted="yes") == {people["jane"].pk}
    assert ids(q="M2", deleted="yes") == {people["jane"].pk}
    # "All": live ones through the index (typos forgiven), deleted ones by plain search.
    assert ids(q="smyth", deleted="all") == {people["john"].pk}
    assert ids(q="smith", deleted="all") == {people["john"].pk, people["jane"].pk}


def test_actions_apply_to_the_searched_patients(client, clerk, people):
    client.force_login(clerk)
    # "Select all N" acts on the changelist's queryset: the search results only.
    everyone = [p.pk for p in people.values()]
    data = {
        "action": "soft_delete_selected",
        "index": "0",
        "select_across": "1",
        "_selected_action": everyone,
    }

    confirm = client.post(url("changelist") + "?q=MRN-1003", data)

    assert [p.pk for p in confirm.context["patients"]] == [people["jones"].pk]


def test_more_matches_than_listed_are_announced(client, clerk, people, monkeypatch):
    monkeypatch.setattr("search.admin.MAX_LIMIT", 1)  # instead of registering 201 patients
    client.force_login(clerk)

    response = client.get(url("changelist"), {"q": "smith"})

    assert len(listed(response)) == 1
    assert any("Showing the best 1 of 2" in str(m) for m in response.context["messages"])


def test_query_count_does_not_grow_with_the_hits(client, clerk, django_assert_max_num_queries):
    def register(count: int, start: int) -> None:
        for n in range(start, start + count):
            register_patient(
                data=patient_data(given=(f"Given{n:02d}",), mrn=f"S{n}", phone=None), actor=clerk
            )

    register(2, 0)
    client.force_login(clerk)
    with django_assert_max_num_queries(16):  # 12, and the audit record (4)
        assert len(listed(client.get(url("changelist"), {"q": "smith"}))) == 2
    register(20, 2)
    with django_assert_max_num_queries(16):  # 12, and the audit record (4)
        assert len(listed(client.get(url("changelist"), {"q": "smith"}))) == 22
