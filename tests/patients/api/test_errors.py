"""One error body for every failure, and no 500 on hostile input."""

import json

import pytest
from rest_framework.exceptions import Throttled
from rest_framework.test import APIClient

from mpi.api import MAX_BODY_BYTES, exception_handler
from patients.models import Patient
from tests.patients.api.helpers import PATIENTS, detail, error_fields, errors_of

pytestmark = pytest.mark.django_db


def post_raw(client, body: bytes | str, content_type="application/json", url=PATIENTS):
    return client.generic("POST", url, body, content_type=content_type)


def test_malformed_json_is_400(as_integrator):
    response = post_raw(as_integrator, b'{"names": [')
    assert response.status_code == 400
    assert errors_of(response)[0]["code"] == "parse-error"


def test_invalid_utf8_is_400(as_integrator):
    response = post_raw(as_integrator, b'{"names": "\xff\xfe"}')
    assert response.status_code == 400


def test_deeply_nested_json_is_400(as_integrator):
    response = post_raw(as_integrator, "[" * 100_000 + "]" * 100_000)
    assert response.status_code in (400, 413)
    errors_of(response)


def test_oversized_body_is_413(as_integrator):
    body = json.dumps({"names": [{"family": "x" * (MAX_BODY_BYTES + 10)}]})
    response = post_raw(as_integrator, body)
    assert response.status_code == 413
    assert errors_of(response)[0]["code"] == "too-large"


def test_a_body_over_djangos_own_limit_is_413_too(as_integrator, settings):
    # Django refuses it (RequestDataTooBig) before the parser's 1 MB check: was a 500.
    body = json.dumps({"names": [{"family": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}]})
    response = post_raw(as_integrator, body)
    assert response.status_code == 413
    assert errors_of(response)[0]["code"] == "too-large"
    assert not Patient.objects.exists()


@pytest.mark.parametrize("url", [PATIENTS, "/api/v1/search/", "/api/v1/organizations/"])
def test_more_query_parameters_than_django_reads_is_400(as_integrator, settings, url):
    # TooManyFieldsSent (a SuspiciousOperation) was a 500 inside DRF.
    query = "&".join(f"name=a{i}" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = as_integrator.get(f"{url}?{query}")
    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in errors_of(response)[0]["message"]


def test_non_json_content_type_is_415(as_integrator):
    response = post_raw(as_integrator, "names=Smith", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert errors_of(response)[0]["code"] == "unsupported-media-type"


def test_non_json_accept_is_406(as_integrator):
    response = as_integrator.get(PATIENTS, HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    errors_of(response)


def test_wrong_method_is_405(as_integrator):
    response = as_integrator.delete(PATIENTS)
    assert response.status_code == 405
    assert errors_of(response)[0]["code"] == "method-not-allowed"


def test_unknown_api_path_is_404_in_the_error_shape(as_integrator):
    for path in ("/api/v1/nothing-here/", "/api/v1/patients/not-a-uuid/", "/api/v1/patients"):
        response = as_integrator.get(path)
        assert response.status_code == 404, path
        assert errors_of(response)[0]["code"] == "not-found"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        42,
        None,
        {"names": "Smith"},
        {"names": [None]},
        {"names": [{"family": {"nested": True}}]},
        {"names": [{"family": "Smith"}], "birth_date": 19800304},
        {"names": [{"family": "Smith"}], "birth_date": "1980-02-30"},
        {"names": [{"family": "Smith"}], "birth_date": "9999-12-31"},
        {"names": [{"family": "Smith"}], "birth_date": "0001-01-01"},
        {"names": [{"family": "Smith"}], "deceased_at": "9999-12-31T23:59:59-14:00"},
        {"names": [{"family": "Smith"}], "deceased_at": "0001-01-01T00:00:00+14:00"},
        {"names": [{"family": "Smith"}], "multiple_birth_order": 10**40},
        {"names": [{"family": "Smith"}], "contacts": [{"system": "phone", "value": "1", "rank": 2**63}]},
        {"names": [{"family": "Smith\x00"}]},
        {"names": [{"family": "Smith", "given": ["Jo\x00hn"]}]},
        {"names": [{"family": "Smith"}], "identifiers": [{"system": "urn:oid:1.2", "value": "\x00"}]},
        {"names": [{"family": "x" * 201}]},
        {"names": [{"family": "\u0958" * 200}]},  # NFC turns each into two code points
        {"names": [{"family": "Smith"}] * 21},
        {"names": [{"family": "Smith"}], "managing_organization": "not-a-uuid"},
        {"names": [{"family": "Smith"}], "managing_organization": "00000000-0000-0000-0000-000000000000"},
        {"names": [{"family": "Smith"}], "links": [{"other": "00000000-0000-0000-0000-000000000000"}]},
        {"names": [{"family": "Smith"}], "gender": ["male"]},
        {"names": [{"family": "Smith"}], "active": "maybe"},
    ],
)
def test_hostile_bodies_are_400_never_500(as_integrator, body):
    response = as_integrator.post(PATIENTS, body, format="json")
    assert response.status_code == 400, response.content
    errors_of(response)
    assert Patient.all_objects.count() == 0


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "1" * 5000])
def test_out_of_range_json_numbers_are_400(as_integrator, number):
    response = post_raw(
        as_integrator, '{"names": [{"family": "Smith"}], "multiple_birth_order": ' + number + "}"
    )
    assert response.status_code == 400
    errors_of(response)


def test_lone_surrogate_in_a_string_is_400(as_integrator):
    response = post_raw(as_integrator, '{"names": [{"family": "\\ud800"}]}')
    assert response.status_code == 400
    assert error_fields(response) == {"names[0].family"}


@pytest.mark.parametrize(
    "params",
    [
        {"birth_date": "yesterday"},
        {"birth_date_from": "99999-01-01"},
        {"updated_since": "2020-13-45T99:00"},
        {"gender": "robot"},
        {"active": "perhaps"},
        {"ordering": "password"},
        {"page": "0"},
        {"page": str(10**30)},
        {"page_size": "-5"},
        {"name": "x" * 201},
        {"name": "\x00"},
    ],
)
def test_bad_query_parameters_never_500(as_integrator, params, jones):
    response = as_integrator.get(PATIENTS, params)
    assert response.status_code in (200, 400, 404), response.content
    if response.status_code != 200:
        errors_of(response)


@pytest.mark.parametrize("if_match", ["*", 'W/"abc"', '"1", "2"', "99999999999999999999", "\x00"])
def test_bad_if_match_is_400(as_integrator, jones, if_match):
    response = as_integrator.patch(
        detail(jones.uuid), {"gender": "female"}, format="json", HTTP_IF_MATCH=if_match
    )
    assert response.status_code == 400
    assert error_fields(response) == {"If-Match"}


def test_bad_change_reason_header_is_400(as_integrator, jones):
    response = as_integrator.patch(
        detail(jones.uuid),
        {"gender": "female"},
        format="json",
        HTTP_IF_MATCH="1",
        HTTP_X_CHANGE_REASON="a\x00b",
    )
    assert response.status_code == 400
    assert error_fields(response) == {"X-Change-Reason"}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer mpi_zzzzzzzz_secret",
        "Token nope",
        "Bearer mpi_0000000_x",
        "Bearer \xff",
    ],
)
def test_bad_tokens_are_401_with_a_reason(header, jones):
    client = APIClient()
    response = client.get(PATIENTS, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert errors_of(response)[0]["code"] == "authentication-failed"


def test_throttling_answers_429_in_the_error_shape():
    response = exception_handler(Throttled(wait=30), {})
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert response.data["errors"][0]["code"] == "throttled"


def test_an_unexpected_error_is_a_500_without_a_stack_trace(caplog):
    response = exception_handler(RuntimeError("secret detail"), {})
    assert response.status_code == 500
    assert response.data == {
        "errors": [{"field": None, "code": "server-error", "message": "Internal error. It has been logged."}]
    }
    assert "secret detail" in caplog.text
