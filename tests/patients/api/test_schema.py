"""The OpenAPI schema validates, the docs are self-hosted, and the API keeps to its
schema under generated input (schemathesis, against the WSGI app in-process).

MPI_FUZZ_EXAMPLES raises the number of examples per operation and MPI_FUZZ_RANDOM=1 draws
new cases each run (`make fuzz-api` sets both).
"""

import os
import re

import hypothesis
import pytest
import schemathesis
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import issue_token
from matching.merging import merge_patients
from matching.models import MatchCandidate
from patients.services import register_patient
from tests.factories import patient_data

EXAMPLES = int(os.environ.get("MPI_FUZZ_EXAMPLES", "20"))


def test_schema_validates_without_warnings(tmp_path):
    # --validate checks it against the OpenAPI 3 meta-schema; warnings fail too.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    text = (tmp_path / "schema.yaml").read_text()
    assert "/api/v1/patients/{id}/history/" in text
    assert "/api/v1/identifiers/resolve/" in text
    for path in ("search/", "match/", "candidates/{id}/decide/", "merges/{id}/unmerge/"):
        assert f"/api/v1/{path}" in text


def test_every_operation_documents_its_error_codes(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403", "406", "429"} <= codes, (method, path)
            if "{id}" in path:
                assert "404" in codes, (method, path)
            if method in ("post", "put", "patch"):
                assert {"400", "413", "415"} <= codes, (method, path)
            for code, response in operation["responses"].items():
                if code >= "400":
                    assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_docs_are_served_from_vendored_assets(client, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in s for s in sources)
    assert all(s.startswith("/") for s in sources), sources  # nothing from a CDN
    # No inline script: the page works under the Content-Security-Policy (script-src 'self').
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    script = next(s for s in sources if "script" in s and "swagger-ui" not in s)
    assert client.get(script).status_code == 200


# --- Schemathesis -----------------------------------------------------------------------


@pytest.fixture
def fuzz_state(transactional_db, admin_user, clerk) -> dict:
    # A transactional test: each request commits or fails on its own, as in production,
    # so one refused statement cannot poison the requests after it.
    patient = register_patient(data=patient_data(), actor=clerk)
    # A candidate and a merge, so decide / unmerge reach their services too.
    twin = register_patient(data=patient_data(given=("Jon",), mrn="78"), actor=clerk)
    candidate = MatchCandidate.objects.pair(patient, twin).get()
    survivor = register_patient(data=patient_data(family="Merged", mrn="80", phone=None), actor=clerk)
    duplicate = register_patient(data=patient_data(family="Merged", mrn="81", phone=None), actor=clerk)
    merge = merge_patients(survivor=survivor, duplicate=duplicate, actor=admin_user, reason="fuzz")
    _, token = issue_token(user=admin_user, name="schemathesis")
    return {
        "token": token,
        "patient": str(patient.uuid),
        "/api/v1/candidates/": str(candidate.uuid),
        "/api/v1/merges/": str(merge.uuid),
    }


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _run_operation(operation, mode, state) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        # The same cases in the regular suite; `make fuzz-api` draws new ones each run.
        derandomize=os.environ.get("MPI_FUZZ_RANDOM") != "1",
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def run(case):
        # Half the generated ids (by their first hex digit) point at a real patient, so
        # updates, deletes and restores reach the services, not only the 404 path.
        ids = case.path_parameters or {}
        if "id" in ids and str(ids["id"])[:1] in "01234567":
            prefix = next((p for p in state if p.startswith("/") and operation.path.startswith(p)), None)
            ids["id"] = state[prefix] if prefix else state["patient"]
        case.call_and_validate(headers={"Authorization": f"Bearer {state['token']}"}, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_api_conforms_to_its_schema_under_generated_input(fuzz_state, mode, caplog):
    # The schemathesis pytest plugin's parametrize does not work with pytest 9 yet, so
    # the operations are driven here, each as one hypothesis test.
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    failures = []
    for operation in operations:
        try:
            _run_operation(operation, mode, fuzz_state)
        except Exception as exc:  # reported together below, with the operation
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The error handler turns database refusals into 400/409 and logs them: each is a
    # validation gap, so none may happen.
    assert not [r for r in caplog.records if r.name == "mpi.api"], caplog.text
