"""GET /fhir/Patient and POST /fhir/Patient/_search: the searchset Bundle over HTTP."""

from datetime import date
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from matching.services import matching_disabled
from patients.services import delete_patient, register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.fhir.conftest import BASE, outcome_issues

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def crowd(clerk):
    """20 Smiths born on different days, and one Jones."""
    with matching_disabled():
        smiths = [
            register_patient(
                data=patient_data(
                    given=(f"John{chr(97 + i)}",), birth_date=date(1980, 1, 1 + i), mrn=f"S{i}", phone=None
                ),
                actor=clerk,
            )
            for i in range(20)
        ]
        jones = register_patient(
            data=patient_data(
                family="Jones", given=("Mary",), gender="female", mrn="J1", phone="617 555 0142"
            ),
            actor=clerk,
        )
    return smiths, jones


def entry_ids(bundle) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def link(bundle, relation) -> str | None:
    return next((item["url"] for item in bundle["link"] if item["relation"] == relation), None)


def follow(client, url):
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def test_search_answers_a_searchset_bundle(as_integrator, crowd):
    _, jones = crowd
    response = as_integrator.get(f"{BASE}/Patient?family=jones")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 1
    (entry,) = bundle["entry"]
    assert entry["fullUrl"] == f"http://testserver/fhir/Patient/{jones.uuid}"
    assert entry["search"] == {"mode": "match"}
    assert entry["resource"]["resourceType"] == "Patient"
    assert entry["resource"]["name"][0]["family"] == "Jones"
    assert link(bundle, "self").startswith("http://testserver/fhir/Patient?family=jones")
    assert link(bundle, "next") is None


def test_post_search_equals_get(as_integrator, crowd):
    query = "family=smith&birthdate=ge1980-01-05&_sort=-birthdate&_count=5"
    by_get = as_integrator.get(f"{BASE}/Patient?{query}").json()
    by_post = as_integrator.post(f"{BASE}/Patient/_search", query, content_type=FORM)
    assert by_post.status_code == 200, by_post.content
    by_post = by_post.json()
    assert entry_ids(by_post) == entry_ids(by_get) and len(entry_ids(by_get)) == 5
    assert by_post["total"] == by_get["total"] == 16
    assert link(by_post, "next") == link(by_get, "next")
    # Parameters may be split between the URL and the body (AND).
    split = as_integrator.post(
        f"{BASE}/Patient/_search?family=smith&_count=5",
        "birthdate=ge1980-01-05&_sort=-birthdate",
        content_type=FORM,
    ).json()
    assert entry_ids(split) == entry_ids(by_get)


def test_post_search_takes_only_a_form(as_integrator, crowd):
    response = as_integrator.post(f"{BASE}/Patient/_search", {"family": "smith"})  # JSON
    assert response.status_code == 415
    assert outcome_issues(response)[0]["code"] == "not-supported"


def test_search_needs_read_permission(anonymous, as_outsider, crowd):
    assert anonymous.get(f"{BASE}/Patient?family=smith").status_code == 401
    assert anonymous.post(f"{BASE}/Patient/_search", "family=smith", content_type=FORM).status_code == 401
    assert as_outsider.post(f"{BASE}/Patient/_search", "family=smith", content_type=FORM).status_code == 403


@pytest.mark.parametrize("start", ["get", "post"])
def test_paging_follows_next_to_the_end_without_gaps_or_duplicates(as_integrator, crowd, start):
    smiths, jones = crowd
    if start == "get":
        bundle = as_integrator.get(f"{BASE}/Patient?_count=3&_sort=birthdate").json()
    else:
        bundle = as_integrator.post(
            f"{BASE}/Patient/_search", "_count=3&_sort=birthdate", content_type=FORM
        ).json()
    seen, pages = [], 0
    while True:
        pages += 1
        assert bundle["total"] == 21
        assert len(entry_ids(bundle)) <= 3
        seen += entry_ids(bundle)
        if pages > 1:
            assert link(bundle, "previous")
        url = link(bundle, "next")
        if not url:
            break
        response = follow(as_integrator, url)
        assert response.status_code == 200
        bundle = response.json()
    assert pages == 7
    assert len(seen) == len(set(seen)) == 21
    assert set(seen) == {str(p.uuid) for p in [*smiths, jones]}
    assert seen[:20] == [str(p.uuid) for p in sorted(smiths, key=lambda p: p.birth_date)]  # in order


def test_previous_link_goes_back(as_integrator, crowd):
    first = as_integrator.get(f"{BASE}/Patient?family=smith&_count=4").json()
    second = follow(as_integrator, link(first, "next")).json()
    back = follow(as_integrator, link(second, "previous")).json()
    assert entry_ids(back) == entry_ids(first)
    assert "_offset=4" in link(second, "self")


def test_page_past_the_end_still_reports_the_total(as_integrator, crowd):
    bundle = as_integrator.get(f"{BASE}/Patient?family=smith&_offset=100").json()
    assert bundle["total"] == 20 and "entry" not in bundle


def test_total_modes(as_integrator, crowd):
    accurate = as_integrator.get(f"{BASE}/Patient?family=smith&_count=2").json()
    assert accurate["total"] == 20
    assert as_integrator.get(f"{BASE}/Patient?family=smith&_count=2&_total=estimate").json()["total"] == 20
    none = as_integrator.get(f"{BASE}/Patient?family=smith&_count=2&_total=none").json()
    assert "total" not in none and len(none["entry"]) == 2
    assert "_total=none" in link(none, "next")


def test_summary_count_returns_only_the_total(as_integrator, crowd):
    bundle = as_integrator.get(f"{BASE}/Patient?family=smith&_summary=count").json()
    assert bundle["total"] == 20
    assert "entry" not in bundle
    assert link(bundle, "next") is None
    zero = as_integrator.get(f"{BASE}/Patient?family=smith&_count=0").json()
    assert zero["total"] == 20 and "entry" not in zero


def test_elements_subset_the_resources(as_integrator, crowd):
    bundle = as_integrator.get(f"{BASE}/Patient?family=jones&_elements=name,gender").json()
    resource = bundle["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "name", "gender"}
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
            "display": "subsetted"} in resource["meta"]["tag"]  # fmt: skip
    assert "_elements=name,gender" in link(bundle, "self")
    summary = as_integrator.get(f"{BASE}/Patient?family=jones&_summary=true").json()["entry"][0]["resource"]
    assert "name" in summary and summary["meta"]["tag"][-1]["code"] == "SUBSETTED"


def test_unknown_parameters_are_reported_leniently(as_integrator, crowd):
    response = as_integrator.get(f"{BASE}/Patient?family=jones&shoe-size=42")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["total"] == 1
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    (issue,) = outcome[0]["resource"]["issue"]
    assert issue["severity"] == "warning" and "shoe-size" in issue["diagnostics"]
    assert "shoe-size" not in link(bundle, "self")  # the self link shows what was used
    lenient = as_integrator.get(f"{BASE}/Patient?family=jones&shoe-size=42", HTTP_PREFER="handling=lenient")
    assert lenient.status_code == 200


def test_unknown_parameters_are_refused_strictly(as_integrator, crowd):
    response = as_integrator.post(
        f"{BASE}/Patient/_search",
        "family=jones&shoe-size=42",
        content_type=FORM,
        HTTP_PREFER="handling=strict",
    )
    assert response.status_code == 400
    (issue,) = outcome_issues(response)
    assert "shoe-size" in issue["diagnostics"] and issue["expression"] == ["shoe-size"]


def test_unknown_parameters_are_refused_strictly_on_get(as_integrator, crowd):
    response = as_integrator.get(f"{BASE}/Patient?family=jones&shoe-size=42", HTTP_PREFER="handling=strict")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("birthdate=xx1980", "birthdate"),
        ("birthdate=1980-13-01", "birthdate"),
        ("birthdate=1980-02-30", "birthdate"),
        ("_lastUpdated=yesterday", "_lastUpdated"),
        ("_count=abc", "_count"),
        ("_count=-5", "_count"),
        ("_offset=x", "_offset"),
        ("_offset=%C2%B2", "_offset"),  # "²": str.isdigit() but not int()
        ("_offset=" + "9" * 5000, "_offset"),  # more digits than int() reads
        ("_count=" + "9" * 19, "_count"),
        ("gender=M", "gender"),
        ("active=yes", "active"),
        ("family:sounds=smith", "family:sounds"),
        ("birthdate:exact=1980", "birthdate:exact"),
        ("_sort=shoe", "_sort"),
        ("_total=all", "_total"),
        ("_summary=all", "_summary"),
        ("_elements=shoe", "_elements"),
        ("identifier=a|b|c", "identifier"),
    ],
)
def test_invalid_values_are_400_naming_the_parameter(as_integrator, query, param):
    response = as_integrator.get(f"{BASE}/Patient?{query}")
    assert response.status_code == 400
    (issue,) = outcome_issues(response)
    assert issue["code"] in ("invalid", "not-supported")
    assert param in issue["diagnostics"]
    assert issue["expression"] == [param]


def test_deleted_patients_are_never_returned(as_integrator, crowd, clerk):
    _, jones = crowd
    delete_patient(patient=jones, actor=clerk, reason="test")
    for query in ("family=jones", f"_id={jones.uuid}", f"identifier={MRN_SYSTEM}|J1", "phone=6175550142", ""):
        bundle = as_integrator.get(f"{BASE}/Patient?{query}").json()
        assert str(jones.uuid) not in entry_ids(bundle), query


def test_mothers_maiden_name_matches_nothing_and_says_why(as_integrator, crowd):
    bundle = as_integrator.get(f"{BASE}/Patient?family=jones&mothersMaidenName=Jones").json()
    assert bundle["total"] == 0
    (outcome,) = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert "mother's maiden name" in outcome["resource"]["issue"][0]["diagnostics"]


def test_a_page_costs_the_same_queries_for_1_or_20_results(as_integrator, crowd):
    as_integrator.get(f"{BASE}/Patient?family=jones")  # warm up: token lookup caches, content types
    counts = []
    for query in ("family=jones", "family=smith"):
        with CaptureQueriesContext(connection) as queries:
            bundle = as_integrator.get(f"{BASE}/Patient?{query}&_count=20").json()
        counts.append(len(queries))
        assert len(entry_ids(bundle)) in (1, 20)
    assert counts[0] == counts[1]


def test_a_page_of_twenty_is_a_bounded_number_of_queries(as_integrator, crowd, django_assert_max_num_queries):
    as_integrator.get(f"{BASE}/Patient?family=jones")  # warm up the content-type cache
    # Token and permission lookups, rate counter (4), the page's ids (1), the resources (6),
    # the access audit record (savepoint, chain lock, insert, release).
    with django_assert_max_num_queries(15):
        bundle = as_integrator.get(f"{BASE}/Patient?family=smith&_count=20").json()
    assert len(entry_ids(bundle)) == 20


def test_capability_statement_lists_the_search(anonymous):
    body = anonymous.get(f"{BASE}/metadata").json()
    (patient,) = [r for r in body["rest"][0]["resource"] if r["type"] == "Patient"]
    assert {"code": "search-type"} in patient["interaction"]
    params = {p["name"]: p for p in patient["searchParam"]}
    for name in ("_id", "identifier", "family", "given", "name", "birthdate", "gender", "telecom", "phone",
                 "email", "address", "address-city", "address-postalcode", "address-state", "address-country",
                 "active", "link", "_lastUpdated", "mothersMaidenName", "_sort", "_count"):  # fmt: skip
        assert name in params, name
    assert params["birthdate"]["type"] == "date"
    assert ":exact" in params["family"]["documentation"]
    assert "does not record" in params["mothersMaidenName"]["documentation"]
