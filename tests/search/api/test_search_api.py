"""GET /api/v1/search/: the clerk search for integrators."""

from datetime import date

import pytest
from rest_framework.test import APIClient

from matching.merging import merge_patients
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.patients.api.helpers import error_fields, errors_of, token_client

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/search/"
FAMILIES = (
    "Abbott", "Baxter", "Carver", "Dalton", "Ellison", "Fletcher", "Garrick", "Holloway", "Ingram",
    "Jarvis", "Kendrick", "Lockwood", "Mercer", "Norwood", "Oakley", "Prescott", "Quimby", "Radcliffe",
    "Sterling", "Thornton",
)  # fmt: skip


@pytest.fixture
def smiths(clerk):
    john = register_patient(data=patient_data(mrn="77"), actor=clerk)
    jane = register_patient(
        data=patient_data(
            given=("Jane",), gender="female", birth_date=date(1990, 5, 6), mrn="78", phone=None
        ),
        actor=clerk,
    )
    return john, jane


def test_free_text_search_ranks_hits_and_says_what_matched(as_integrator, smiths):
    john, _ = smiths
    response = as_integrator.get(SEARCH, {"q": "jon smyth 1980-03-04"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1 and body["count_exact"] is True
    [hit] = body["results"]
    assert hit["id"] == str(john.uuid)
    assert hit["rank"] == 1
    assert hit["display_name"] == "John Smith"
    assert hit["birth_date"] == "1980-03-04"
    assert {"birth_date", "name:phonetic"} <= set(hit["matched"])
    assert hit["identifiers"] == [{"system": MRN_SYSTEM, "value": "77"}]
    assert hit["merged"] is False


def test_structured_parameters_search_as_the_page_does(as_integrator, smiths):
    john, jane = smiths
    by_family = as_integrator.get(SEARCH, {"family": "smith", "given": "jane"}).json()
    assert next(h["id"] for h in by_family["results"]) == str(jane.uuid)
    by_identifier = as_integrator.get(SEARCH, {"identifier": f"{MRN_SYSTEM}|77"}).json()
    assert [h["id"] for h in by_identifier["results"]] == [str(john.uuid)]
    assert by_identifier["results"][0]["matched"] == ["identifier"]
    by_date_and_gender = as_integrator.get(SEARCH, {"birth_date": "06/05/1990", "gender": "female"}).json()
    assert [h["id"] for h in by_date_and_gender["results"]] == [str(jane.uuid)]
    by_postcode = as_integrator.get(SEARCH, {"postcode": "02134", "gender": "male"}).json()
    assert [h["id"] for h in by_postcode["results"]] == [str(john.uuid)]


def test_a_merged_record_is_found_only_by_its_id_and_flagged(as_integrator, smiths, steward):
    john, jane = smiths
    merge_patients(survivor=jane, duplicate=john, actor=steward, reason="test")
    by_name = as_integrator.get(SEARCH, {"q": "john smith"}).json()
    assert str(john.uuid) not in {h["id"] for h in by_name["results"]}
    # Its identifier moved to the survivor; its own id still finds it, flagged.
    by_identifier = as_integrator.get(SEARCH, {"identifier": "77"}).json()
    assert [h["id"] for h in by_identifier["results"]] == [str(jane.uuid)]
    [hit] = as_integrator.get(SEARCH, {"q": str(john.uuid)}).json()["results"]
    assert (hit["id"], hit["merged"], hit["matched"]) == (str(john.uuid), True, ["id"])


def test_pages_link_to_each_other(as_integrator, clerk):
    for i in range(3):
        register_patient(data=patient_data(given=(f"Ann{i}",), mrn=f"9{i}", phone=None), actor=clerk)
    first = as_integrator.get(SEARCH, {"family": "smith", "page_size": 2}).json()
    assert first["count"] == 3 and len(first["results"]) == 2
    assert first["previous"] is None and "page=2" in first["next"]
    second = as_integrator.get(first["next"]).json()
    assert [h["rank"] for h in second["results"]] == [3]
    assert second["next"] is None and "page=" not in second["previous"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, None),
        ({"gender": "female"}, None),  # a gender only narrows
        ({"q": "smith", "page_size": 101}, "page_size"),
        ({"q": "smith", "page": 0}, "page"),
        ({"birth_date": "31/31/1980"}, "birth_date"),
        ({"phone": "12"}, "phone"),
        ({"gender": "robot", "q": "smith"}, "gender"),
        ({"q": "x" * 201}, "q"),
        ({"surname": "smith"}, "surname"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(as_integrator, params, field):
    response = as_integrator.get(SEARCH, params)
    assert response.status_code == 400
    assert field in error_fields(response)


@pytest.mark.parametrize(
    ("role", "expected"),
    [("integrator", 200), ("steward", 200), ("clerk", 200), ("auditor", 200), ("outsider", 403)],
)
def test_search_needs_view_patient(request, role, expected, smiths):
    response = token_client(request.getfixturevalue(role)).get(SEARCH, {"q": "smith"})
    assert response.status_code == expected
    if expected == 403:
        assert "needs the permission patients.view_patient" in errors_of(response)[0]["message"]


def test_anonymous_search_is_401():
    response = APIClient().get(SEARCH, {"q": "smith"})
    assert response.status_code == 401
    assert errors_of(response)[0]["code"] == "not-authenticated"


@pytest.mark.parametrize("rows", [1, 20])
def test_search_query_count_does_not_grow_with_the_page(
    as_integrator, clerk, rows, django_assert_max_num_queries
):
    for i, family in enumerate(FAMILIES[:rows]):
        register_patient(
            data=patient_data(family=family, birth_date=date(1960, 1, 1), mrn=f"5{i}", phone=None),
            actor=clerk,
        )
    with django_assert_max_num_queries(11):  # auth 5, search, identifiers, audit record 4
        response = as_integrator.get(SEARCH, {"birth_date": "1960-01-01"})
    assert len(response.json()["results"]) == rows


def test_superscript_digits_in_the_query_are_searched_not_a_500(as_integrator, smiths):
    response = as_integrator.get(SEARCH, {"q": "smith ²²²²"})
    assert response.status_code == 200
