"""Production serving: health checks, request logs, statement timeouts, replica routing,
and gunicorn with our config serving them for real."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote
from urllib.request import Request, urlopen

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.urls import reverse

from bench.server import free_port
from mpi import observability
from mpi.db import REPLICA, ReplicaRouter, read_alias, replica_reads
from tests.factories import patient_data

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def database_url(name: str | None = None) -> str:
    """The test database as a URL, for processes started by a test."""
    s = connection.settings_dict
    host = quote(s["HOST"] or "", safe="")
    auth = quote(s["USER"] or "") + (":" + quote(s["PASSWORD"]) if s["PASSWORD"] else "")
    return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{name or s['NAME']}"


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MPI_PROCESS", "DATABASE_REPLICA_URL")}
    return {**env, "DATABASE_URL": database_url(), "MPI_ALLOW_DEV_SECRET_KEY": "true", **extra}


# --- Health checks -----------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(client):
    response = client.get("/healthz")  # no db fixture: a query would raise
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_the_database_and_migrations(client, monkeypatch):
    monkeypatch.setattr(observability, "_migrations_applied", False)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert observability._unapplied_migrations() == 0


@pytest.mark.django_db
def test_readyz_is_unavailable_while_migrations_are_pending(client, monkeypatch):
    monkeypatch.setattr(observability, "_migrations_applied", False)
    monkeypatch.setattr(observability, "_unapplied_migrations", lambda: 2)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "2 migration(s) not applied"}


# --- Request logs --------------------------------------------------------------------------


@pytest.fixture
def request_log(caplog):
    """The request lines as dicts (the logger does not propagate to the root's caplog handler)."""
    logger = logging.getLogger("mpi.requests")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="mpi.requests")
    yield lambda: [json.loads(r.getMessage()) for r in caplog.records if r.name == "mpi.requests"]
    logger.removeHandler(caplog.handler)


@pytest.mark.django_db
def test_one_json_line_per_request_without_patient_data(client, integrator, request_log):
    from patients.services import register_patient

    patient = register_patient(
        data=patient_data(family="Zebulonsky", given="Wilhelmina"), actor=integrator, reason="test"
    )
    client.force_login(integrator)
    response = client.get(f"/api/v1/patients/{patient.uuid}/", HTTP_X_REQUEST_ID="lb-7f3a")
    client.get("/search/?q=Zebulonsky+Wilhelmina")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "lb-7f3a"
    read, search = request_log()
    assert read["request_id"] == "lb-7f3a"
    assert read["method"] == "GET"
    assert read["route"].startswith("/api/v1/patients/{") and read["route"].endswith("}/")
    assert read["status"] == 200
    assert read["duration_ms"] >= 0
    assert read["client"] == f"user:{integrator.pk}"
    assert search["route"] == "/search/"
    everything = json.dumps([read, search])
    for secret in (str(patient.uuid), patient.uuid.hex, "Zebulonsky", "Wilhelmina"):
        assert secret not in everything


def test_a_request_id_that_is_not_a_sane_token_is_replaced(client, request_log):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="x" * 200)
    client.get("/no-such-page-anywhere")
    assert len(response["X-Request-ID"]) == 32
    lines = request_log()
    assert lines[0]["request_id"] == response["X-Request-ID"]
    assert lines[1]["route"] is None and lines[1]["status"] == 404


def test_route_templates_hide_the_values():
    route = "api/v1/^patients/(?P<id>[0-9a-fA-F]{8}-?[0-9a-fA-F]{4})/history/$"
    assert observability.route_template(route) == "api/v1/patients/{id}/history/"
    assert observability.route_template("^fhir(?:/|$)Patient/(?P<id>[^/]+)$") == "fhir/Patient/{id}"


# --- Statement timeouts ---------------------------------------------------------------------


def _show_statement_timeout(**env) -> str:
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mpi.settings'); "
        "django.setup(); from django.db import connection; "
        "c = connection.cursor(); c.execute('SHOW statement_timeout'); print(c.fetchone()[0])"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=child_env(**env), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.django_db
def test_web_processes_get_a_short_statement_timeout_and_commands_a_long_one():
    assert _show_statement_timeout(MPI_PROCESS="web") == "5s"
    assert _show_statement_timeout(MPI_PROCESS="web", DB_STATEMENT_TIMEOUT_MS="1500") == "1500ms"
    assert _show_statement_timeout() == "1h"
    assert _show_statement_timeout(DB_COMMAND_STATEMENT_TIMEOUT_MS="0") == "0"


def test_statements_are_prepared_on_their_fifth_run_unless_binding_is_client_side():
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mpi.settings'); "
        "django.setup(); from django.db import connection; connection.ensure_connection(); "
        "print(connection.connection.prepare_threshold)"
    )

    def threshold(**env) -> str:
        done = subprocess.run(
            [PYTHON, "-c", code], cwd=ROOT, env=child_env(**env), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert threshold() == "5"
    assert threshold(DB_SERVER_SIDE_BINDING="false") == "None"  # a transaction-pooling PgBouncer


# --- Connection health checks -----------------------------------------------------------------


def test_a_healthy_connection_is_checked_without_a_query(db, monkeypatch):
    connection.ensure_connection()
    sent = []
    with monkeypatch.context() as patched:  # psycopg's own cursor: what SELECT 1 would take
        patched.setattr(type(connection.connection), "cursor", lambda *a, **k: sent.append("cursor"))
        usable = connection.is_usable()
    assert usable is True
    assert sent == []


def test_a_connection_in_a_failed_transaction_is_not_usable(db):
    from django.db import DatabaseError

    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT 1/0")  # aborts the test's transaction (no savepoint)
    assert connection.is_usable() is False


def _terminate_other_backends() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_a_request_uses_it(integrator, tmp_path):
    """The server drops the worker's persistent connection (a restart, a failover,
    pg_terminate_backend): the next request still gets its answer, not a 500."""
    from accounts.services import issue_token
    from patients.services import register_patient

    patient = register_patient(data=patient_data(mrn="1"))
    _, token = issue_token(user=integrator, name="health check test")
    log = tmp_path / "gunicorn.log"
    with gunicorn_server(tmp_path, log) as (_, base):
        headers = {"Authorization": f"Bearer {token}"}
        read = Request(f"{base}/api/v1/patients/{patient.uuid}/", headers=headers)
        statuses = []
        for _ in range(3):
            with urlopen(read, timeout=10) as response:
                statuses.append(response.status)
            _terminate_other_backends()
            time.sleep(0.2)  # the server's goodbye reaches the worker's socket
        with urlopen(read, timeout=10) as response:
            statuses.append(response.status)
    assert statuses == [200] * 4, log.read_text()[-3000:]


# --- Garbage collection in a worker ------------------------------------------------------------


def test_a_worker_freezes_what_it_loaded_out_of_the_garbage_collectors_way():
    code = (
        "import django, gc, os, runpy, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mpi.settings'); "
        "django.setup(); runpy.run_path('gunicorn.conf.py')['post_worker_init'](None); "
        "print(gc.get_freeze_count(), *gc.get_threshold(), 'fhir_api.views.operations' in sys.modules)"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    frozen, *threshold, views_loaded = done.stdout.split()
    # The app and every view module (imported by the hook, not by the first request).
    assert int(frozen) > 50_000 and views_loaded == "True"
    assert [int(t) for t in threshold] == [700, 10, 100]


# --- Replica routing ---------------------------------------------------------------------------

REPLICA_DATABASES = {"default": {}, REPLICA: {}}
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def test_reads_go_to_the_replica_only_when_asked_and_configured():
    router = ReplicaRouter()
    assert router.db_for_read(None) == "default"
    with replica_reads():
        assert read_alias() == "default"  # no replica configured
        with override_settings(DATABASES=REPLICA_DATABASES):
            assert router.db_for_read(None) == REPLICA
            assert router.db_for_write(None) == "default"
    with override_settings(DATABASES=REPLICA_DATABASES):
        assert router.db_for_read(None) == "default"  # not asked
    assert router.allow_migrate("default", "patients") and not router.allow_migrate(REPLICA, "patients")


@pytest.mark.django_db
def test_reads_inside_a_transaction_on_the_primary_stay_there():
    # The test runs inside a transaction: what it reads may be part of its own write.
    assert connections["default"].in_atomic_block
    with replica_reads(), override_settings(DATABASES=REPLICA_DATABASES):
        assert read_alias() == "default"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("imports", "read"),
    [
        ("from patients.models import Patient", "Patient.objects.count()"),
        (  # raw SQL: the candidate query of a search or match
            "from search.blocking import find_candidate_records; from tests.factories import patient_data",
            "find_candidate_records(patient_data(mrn='1'))",
        ),
    ],
    ids=["orm", "candidate query"],
)
def test_a_process_with_a_replica_sends_search_reads_there_and_writes_to_the_primary(imports, read):
    code = f"""
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mpi.settings")
django.setup()
from django.db import connections
from mpi.db import replica_reads
{imports}
{read}
print("replica used before asking:", connections["replica"].connection is not None)
with replica_reads():
    {read}
print("replica used when asked:", connections["replica"].connection is not None)
"""
    env = child_env(DATABASE_REPLICA_URL=database_url() + "?application_name=replica")
    done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "replica used before asking: False" in done.stdout
    assert "replica used when asked: True" in done.stdout


# --- gunicorn with our config -------------------------------------------------------------------


def _wait_for(url: str, deadline: float) -> None:
    while True:
        try:
            urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def gunicorn_server(tmp_path: Path, log: Path, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """gunicorn with gunicorn.conf.py on a free port of 127.0.0.1 (one worker unless ``env``
    says otherwise), its output in ``log``, answering /healthz: (the master, its base URL)."""
    port = free_port()
    env = child_env(
        **{"GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1", "HOME": str(tmp_path), **env}
    )
    env.pop("XDG_RUNTIME_DIR", None)
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(Path(PYTHON).parent / "gunicorn"), "mpi.wsgi:application", "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(f"{base}/healthz", time.monotonic() + 60)
            yield server, base
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_health_checks_and_json_request_lines(tmp_path):
    log = tmp_path / "gunicorn.log"
    with gunicorn_server(tmp_path, log) as (_, base):
        ready = json.loads(urlopen(f"{base}/readyz", timeout=10).read())
        assert ready == {"status": "ok"}
        with pytest.raises(OSError) as refused:
            urlopen(f"{base}/api/v1/patients/", timeout=10)
        assert refused.value.code == 401
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"ts"')]
    assert [(line["route"], line["status"]) for line in lines][-3:] == [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/api/v1/patients/", 401),
    ]
    assert not (tmp_path / ".gunicorn").exists()  # no control socket
    assert "Traceback" not in log.read_text()


def test_gunicorn_with_an_unreachable_database_is_alive_but_not_ready(tmp_path):
    nowhere = f"postgres://nobody@127.0.0.1:{free_port()}/nothing"
    with gunicorn_server(tmp_path, tmp_path / "gunicorn.log", DATABASE_URL=nowhere) as (_, base):
        with pytest.raises(OSError) as unavailable:
            urlopen(f"{base}/readyz", timeout=10)
        assert unavailable.value.code == 503
        assert json.loads(unavailable.value.read()) == {
            "status": "unavailable",
            "reason": "database unreachable",
        }


def test_health_urls_are_named():
    assert reverse("healthz") == "/healthz" and reverse("readyz") == "/readyz"
