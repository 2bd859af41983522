"""``manage.py bench`` end to end on a tiny registry: every figure is printed and written.

Not a performance test (nothing is asserted about speed): it proves the suite runs —
generate, import, find_duplicates, gunicorn, the SQL floors, the audit comparison, the
Python load generator — and reports every figure with its target, error-free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from bench.report import TARGETS
from bench.server import ROOT, child_env
from mpi import localdb

FIGURES = {
    "import", "find_duplicates", "healthz", "read_rest", "read_fhir", "update_rest", "register_rest",
    "register_fhir", "clerk_search", "fhir_search", "match", "audit_overhead", "audit_record",
    "rps_healthz", "rps_drf", "rps_read", "rps_search", "rps_match", "worker_rss",
}  # fmt: skip


@pytest.fixture
def bench_database():
    """A database name of this run's own (the command drops and re-creates it, --drop removes it)."""
    base = os.environ.get("TEST_DATABASE_NAME", "test_mpi")
    return f"{base}_bench_{uuid.uuid4().hex[:6]}"


def _bench(database: str, out, workdir, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "manage.py", "bench", "--patients", "200", "--probes", "6", "--duration", "1",
        "--connections", "2", "--workers", "2", "--load-generator", "python", "--database", database,
        "--json", str(out), "--workdir", str(workdir), *extra,
    ]  # fmt: skip
    # The same server as the tests: DATABASE_URL's, or the local cluster (no DATABASE_URL).
    env = child_env(os.environ.get("DATABASE_URL", ""))
    if not env["DATABASE_URL"]:
        del env["DATABASE_URL"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_bench_runs_end_to_end_and_reports_every_figure(bench_database, tmp_path):
    out = tmp_path / "bench.json"
    result = _bench(bench_database, out, tmp_path / "work")
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        _check_report(out, result)
        # --reuse measures the same database again: no load, and the second run's new
        # patients (registrations) do not collide with the first run's.
        again = tmp_path / "again.json"
        second = _bench(bench_database, again, tmp_path / "work", "--reuse")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "(reused)" in second.stderr and "(reused database:" in second.stdout
        report = json.loads(again.read_text())
        assert report["meta"]["reused"] is True
        figures = {f["key"]: f for f in report["figures"]}
        assert set(figures) == FIGURES - {"import", "find_duplicates"}
        for key, figure in figures.items():
            assert figure["errors"] == 0, (key, figure["notes"])
    finally:
        url = os.environ.get("DATABASE_URL") or localdb.database_url()
        with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_database}" WITH (FORCE)')


def test_bench_reuse_needs_a_loaded_database(bench_database, tmp_path):
    result = _bench(bench_database, tmp_path / "b.json", tmp_path / "work", "--reuse")
    assert result.returncode != 0
    assert f"--reuse: there is no database {bench_database}" in result.stderr


def _check_report(out, result) -> None:
    report = json.loads(out.read_text())
    figures = {f["key"]: f for f in report["figures"]}
    assert set(figures) == FIGURES
    assert report["meta"]["load_generator"] == "python"
    for key, figure in figures.items():
        assert figure["errors"] == 0, (key, figure["notes"])
        assert (figure["p95"] if figure["unit"] == "ms" else figure["value"]) is not None, key
    for key in TARGETS:
        assert figures[key]["target"] and figures[key]["passed"] in (True, False), key
    assert figures["import"]["detail"]["patients"] == 200
    for key in ("read_rest", "register_rest", "match"):
        assert figures[key]["floor"] > 0 and figures[key]["detail"]["sql_replay_failed"] == 0, key
    assert figures["match"]["detail"]["original_found"] > 0  # the planted original is found
    assert figures["rps_read"]["floor"] == figures["rps_healthz"]["value"]
    assert 20 < figures["worker_rss"]["value"] < 2000

    # One table, every figure in it, with its target and verdict.
    table = result.stdout
    for figure in report["figures"]:
        assert figure["label"] in table
    assert "PASS" in table or "FAIL" in table
    assert "p95 <= 10 ms" in table
