"""GET /api/v1/patients/: filters, ordering, pagination and a bounded query count."""

from dataclasses import replace
from datetime import date, timedelta

import pytest
from django.utils import timezone

from patients.models import Patient
from patients.services import delete_patient, patient_to_data, register_patient, update_patient
from tests.factories import MRN_SYSTEM, SSN_SYSTEM, patient_data
from tests.patients.api.helpers import PATIENTS, error_fields, errors_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(clerk) -> dict[str, Patient]:
    def reg(key, **kwargs):
        return key, register_patient(data=patient_data(**kwargs), actor=clerk)

    return dict(
        [
            reg("smith", family="Smith", given=("John", "Paul"), mrn="1", birth_date=date(1980, 3, 4)),
            reg(
                "nunez",
                family="Núñez",
                given=("José",),
                gender="female",
                mrn="2",
                phone="617 555 0199",
                email="Jose@Example.org",
                postal_code="02135",
                birth_date=date(1990, 1, 1),
            ),
            reg(
                "smithers",
                family="Smithers",
                given=("Waylon",),
                mrn="3",
                phone=None,
                birth_date=date(1950, 6, 1),
            ),
            reg(
                "nobody",
                family="Doe",
                given=("Jane",),
                mrn=None,
                phone=None,
                birth_date=None,
                gender="unknown",
            ),
        ]
    )


def ids(response) -> set[str]:
    assert response.status_code == 200, response.json()
    return {p["id"] for p in response.json()["results"]}


def expect(registry, *keys) -> set[str]:
    return {str(registry[k].uuid) for k in keys}


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ({"family": "smith"}, ("smith", "smithers")),
        ({"family": "smithers"}, ("smithers",)),
        ({"family": "nunez"}, ("nunez",)),
        ({"given": "pau"}, ("smith",)),
        ({"given": "jose"}, ("nunez",)),
        ({"name": "john smith"}, ("smith",)),
        ({"name": "NÚÑEZ josé"}, ("nunez",)),
        ({"name": "ith"}, ()),
        ({"birth_date": "1980-03-04"}, ("smith",)),
        ({"birth_date_from": "1980-01-01"}, ("smith", "nunez")),
        ({"birth_date_to": "1980-12-31"}, ("smith", "smithers")),
        ({"birth_date_from": "1960-01-01", "birth_date_to": "1985-01-01"}, ("smith",)),
        ({"gender": "female"}, ("nunez",)),
        ({"identifier": f"{MRN_SYSTEM}|2"}, ("nunez",)),
        ({"identifier": "3"}, ("smithers",)),
        ({"identifier": f"{MRN_SYSTEM}|"}, ("smith", "nunez", "smithers")),
        ({"identifier": f"{SSN_SYSTEM}|2"}, ()),
        ({"phone": "(617) 555-0199"}, ("nunez",)),
        ({"phone": "+1 617 555 0100"}, ("smith",)),
        ({"email": "JOSE@example.org"}, ("nunez",)),
        ({"postcode": "02135"}, ("nunez",)),
        ({"active": "true"}, ("smith", "nunez", "smithers", "nobody")),
        ({"active": "false"}, ()),
    ],
)
def test_filters(as_integrator, registry, params, keys):
    assert ids(as_integrator.get(PATIENTS, params)) == expect(registry, *keys)


def test_updated_since(as_integrator, registry):
    Patient.objects.filter(pk=registry["smithers"].pk).update(updated_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(as_integrator.get(PATIENTS, {"updated_since": since})) == expect(
        registry, "smith", "nunez", "nobody"
    )


def test_deleted_patients_are_not_listed(as_integrator, registry):
    delete_patient(patient=registry["smith"])
    assert str(registry["smith"].uuid) not in ids(as_integrator.get(PATIENTS))


def test_ordering_by_birth_date(as_integrator, registry):
    results = as_integrator.get(PATIENTS, {"ordering": "birth_date", "gender": "male"}).json()["results"]
    assert [p["birth_date"] for p in results] == ["1950-06-01", "1980-03-04"]
    results = as_integrator.get(PATIENTS, {"ordering": "-birth_date", "gender": "male"}).json()["results"]
    assert [p["birth_date"] for p in results] == ["1980-03-04", "1950-06-01"]


def test_unknown_ordering_is_400(as_integrator, registry):
    response = as_integrator.get(PATIENTS, {"ordering": "uuid"})
    assert response.status_code == 400
    assert error_fields(response) == {"ordering"}


def test_pages_cover_every_patient_once_and_are_bounded(as_integrator, registry):
    seen = []
    url, params = PATIENTS, {"page_size": 3, "ordering": "created_at"}
    while url:
        body = as_integrator.get(url, params).json()
        assert body["count"] == 4
        assert len(body["results"]) <= 3
        seen += [p["id"] for p in body["results"]]
        url, params = body["next"], None
    assert sorted(seen) == sorted(expect(registry, *registry))
    assert len(as_integrator.get(PATIENTS, {"page_size": 10_000}).json()["results"]) == 4


def test_page_size_is_capped_at_100(as_integrator):
    # Bare rows are enough to count a page (registering 101 would run the matcher 101 times).
    Patient.objects.bulk_create([Patient() for _ in range(101)])
    assert len(as_integrator.get(PATIENTS, {"page_size": 500}).json()["results"]) == 100


def test_list_query_count_does_not_grow_with_the_page(as_integrator, clerk, django_assert_max_num_queries):
    for i in range(15):
        register_patient(
            data=patient_data(mrn=f"q-{i}", given=(f"G{i}",), email=f"p{i}@example.org"), actor=clerk
        )
    # Token, last-used stamp, 2 for permissions, rate counter, count, page, 5 prefetches,
    # the audit record (savepoint, chain lock, insert, release): 16, for any page size.
    with django_assert_max_num_queries(16):
        response = as_integrator.get(PATIENTS, {"page_size": 15, "name": "smith", "phone": "+16175550100"})
    assert len(response.json()["results"]) == 15


def test_history_query_count_does_not_grow_with_the_versions(
    as_steward, clerk, django_assert_max_num_queries
):
    patient = register_patient(data=patient_data(), actor=clerk)
    for i in range(15):
        data = patient_to_data(patient)
        update_patient(
            patient=patient,
            data=replace(data, marital_status="M" if i % 2 else "S", names=(*data.names[:1],)),
            expected_version=None,
            actor=clerk,
        )
    # Token, last-used stamp, 2 for permissions, rate counter, the patient, its history,
    # 5 child histories, the audit record (savepoint, chain lock, insert, release).
    with django_assert_max_num_queries(16):
        response = as_steward.get(f"{PATIENTS}{patient.uuid}/history/")
    assert response.json()["count"] == 16


@pytest.mark.parametrize("value", ["maybe", "yes", "2"])
def test_an_unreadable_boolean_filter_is_a_400_not_an_ignored_filter(as_integrator, value):
    response = as_integrator.get(f"{PATIENTS}?active={value}")
    assert response.status_code == 400
    assert errors_of(response)[0]["field"] == "active"


@pytest.mark.parametrize(("value", "expected"), [("TRUE", True), ("1", True), ("false", False), ("0", False)])
def test_boolean_filters_read_true_false_and_1_0(as_integrator, value, expected):
    response = as_integrator.get(f"{PATIENTS}?active={value}")
    assert response.status_code == 200
    assert all(p["active"] is expected for p in response.json()["results"])
