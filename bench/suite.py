"""The benchmark's phases, in order (docs/bench.md).

1. A database of its own, dropped and re-created; N generated patients written to a CSV.
2. ``import_patients --no-match`` of that file (timed), ``refresh_name_frequencies``,
   then ``find_duplicates`` (timed): the documented initial load.
3. gunicorn on loopback; one client times each kind of request (after its SQL floor
   has been measured, see ``floors``); the audit's cost against a second gunicorn
   without the audit middleware.
4. Throughput per mix with the load generator, then each worker's peak RSS.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import transaction

from accounts.services import issue_token
from audit import services as audit
from bench import client as http
from bench.data import Probes, write_registry_csv
from bench.floors import sql_floor
from bench.report import Figure, latency, percentiles, table, write_json
from bench.server import ROOT, child_env, gunicorn
from matching.bench.batch import load_average, use_database
from mpi import localdb
from patients.models import Patient

GENERATORS = ("auto", "wrk", "python")


@dataclass
class Options:
    patients: int = 100_000
    probes: int = 500
    seed: int = 1
    database: str = "mpi_bench"
    duration: float = 20.0  # seconds of load per throughput mix
    connections: int = 8
    workers: int = 0  # 0: as gunicorn.conf.py (GUNICORN_WORKERS or 2 x cores + 1)
    generator: str = "auto"
    json_path: Path = Path("var/bench.json")
    workdir: Path = Path("var/bench")
    drop: bool = False  # drop the database at the end
    reuse: bool = False  # measure the database an earlier run loaded (no generate/import/find_duplicates)


def database_url(name: str) -> str:
    """DATABASE_URL (or the local cluster's) with its database replaced by ``name``."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or localdb.database_url())
    return urlunsplit(parts._replace(path=f"/{name}"))


def python_loop_seconds(iterations: int = 10_000_000) -> float:
    """Seconds this interpreter takes for a bare loop of additions: how fast the machine
    runs Python today (shared machines vary by 2x from day to day), so that runs on
    different days can be compared. Best of three."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(iterations // 3):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 3, 2)


def gunicorn_workers(requested: int) -> int:
    return requested or int(os.environ.get("GUNICORN_WORKERS") or multiprocessing.cpu_count() * 2 + 1)


@dataclass
class Suite:
    options: Options
    log: Callable[[str], None]
    figures: list[Figure] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> list[Figure]:
        o = self.options
        o.workdir.mkdir(parents=True, exist_ok=True)
        generator = self._generator()
        workers = gunicorn_workers(o.workers)
        self.meta = {
            "started": datetime.now(tz=UTC).isoformat(timespec="seconds"),
            "patients": o.patients,
            "probes": o.probes,
            "seed": o.seed,
            "database": o.database,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "gunicorn_workers": workers,
            "load_generator": generator,
            "connections": o.connections,
            "duration_s": o.duration,
            "load_average_before": load_average(),
            "python_loop_s": python_loop_seconds(),
        }
        url = database_url(o.database)
        if o.reuse:
            self.log(f"Benchmark database {o.database} (reused); load average {load_average()}")
            self._check_reusable()
        else:
            self.log(
                f"Benchmark database {o.database} (dropped and re-created); load average {load_average()}"
            )
            use_database(o.database, fresh=True)
        try:
            if not o.reuse:
                self._load(url)
            token = self._token()
            # This process serves the floors' requests too: the same settings as the servers.
            settings.MPI_API_RATE = "off"
            probes = Probes(count=o.probes + self.warmup, seed=o.seed, patients=o.patients, fresh=o.reuse)
            with gunicorn(database_url=url, workers=workers, log=o.workdir / "gunicorn.log") as server:
                idle_rss = server.worker_peak_rss()
                self._warm(server.port, token, probes, workers)
                self._latency(server.port, token, probes)
                self._audit(url, token, probes)
                self._throughput(server.port, token, probes, generator)
                self._rss(server.worker_peak_rss(), idle_rss)
        finally:
            self.meta["load_average_after"] = load_average()
            if o.drop:
                self._drop()
        write_json(o.json_path, self.meta, self.figures)
        return self.figures

    @property
    def warmup(self) -> int:
        """Untimed requests at the start of each figure (after ``_warm``)."""
        return min(20, max(2, self.options.probes // 10))

    def _warm(self, port: int, token: str, probes: Probes, workers: int) -> None:
        """A few requests of every read kind per worker: the first request a worker serves
        imports modules, builds URL resolvers and loads the match model; not a figure."""
        client = http.HttpClient(port, token)
        count = 3 * workers
        for build in (
            probes.rest_reads,
            probes.fhir_reads,
            probes.clerk_searches,
            probes.fhir_searches,
            probes.matches,
        ):
            http.time_requests(client, build()[:count], warmup=count)
        http.time_requests(client, probes.healthz()[:count], warmup=count)
        client.close()

    def _generator(self) -> str:
        chosen = self.options.generator
        if chosen == "wrk" and not http.wrk_path():
            raise RuntimeError("--load-generator wrk: wrk is not installed (apt-get install wrk).")
        if chosen == "auto":
            return "wrk" if http.wrk_path() else "python"
        return chosen

    def _drop(self) -> None:
        from django.db import connection, connections

        name = self.options.database
        connections.close_all()
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _check_reusable(self) -> None:
        """--reuse: the database must hold what an earlier run of the same size loaded."""
        from django.db import connection

        o = self.options
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [o.database])
            if cursor.fetchone() is None:
                raise RuntimeError(
                    f"--reuse: there is no database {o.database}; run without --reuse to load one."
                )
        use_database(o.database, fresh=False)
        loaded = Patient.all_objects.count()
        if loaded < o.patients:
            raise RuntimeError(
                f"--reuse: {o.database} holds {loaded:,} patients, fewer than --patients {o.patients:,}; "
                "run without --reuse to load them."
            )
        self.meta["reused"] = True
        self.meta["patients_in_database"] = loaded

    # -- phase 1-2: data, import, find_duplicates ----------------------------------------------
    def _command(self, url: str, *args: str) -> tuple[float, float, str]:
        """Run a manage.py command on the benchmark database: (wall s, CPU s, output)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=child_env(url),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return wall, cpu, result.stdout

    def _load(self, url: str) -> None:
        o = self.options
        path = o.workdir / f"registry-{o.patients}-{o.seed}.csv"
        started = time.perf_counter()
        planted = write_registry_csv(path, o.patients, o.seed)
        self.meta["generate_s"] = round(time.perf_counter() - started, 1)
        self.meta["planted_duplicates"] = planted
        self.log(f"Wrote {o.patients:,} patients ({planted:,} planted duplicates) to {path}; importing")

        wall, cpu, output = self._command(
            url,
            "import_patients",
            str(path.resolve()),
            "--no-match",
            "--rejects",
            str((o.workdir / "import.rejects.csv").resolve()),
            "--checkpoint",
            str((o.workdir / "import.checkpoint.json").resolve()),
        )
        loaded = Patient.all_objects.count()
        figure = Figure(
            "import", f"import_patients --no-match ({o.patients:,} rec)", "rec/s", value=o.patients / wall
        )
        figure.detail = {"seconds": round(wall, 1), "cpu_seconds_importer": round(cpu, 1), "patients": loaded}
        figure.errors = o.patients - loaded
        figure.notes.append(f"{wall:.1f} s wall, importer CPU {cpu:.1f} s")
        if figure.errors:
            figure.notes.append(f"{figure.errors} records rejected: {o.workdir / 'import.rejects.csv'}")
        self.figures.append(figure)
        self.log(f"  imported {loaded:,} patients in {wall:.1f} s; refreshing name frequencies")

        started = time.perf_counter()
        call_command("refresh_name_frequencies", verbosity=0, stdout=io.StringIO())
        self.meta["name_frequencies_s"] = round(time.perf_counter() - started, 1)

        wall, cpu, output = self._command(
            url,
            "find_duplicates",
            "--restart",
            "--checkpoint",
            str((o.workdir / "find_duplicates.checkpoint.json").resolve()),
        )
        figure = Figure(
            "find_duplicates", f"find_duplicates ({loaded:,} patients)", "pat/s", value=loaded / wall
        )
        figure.detail = {
            "seconds": round(wall, 1),
            "cpu_seconds_main_process": round(cpu, 1),
            "summary": output.strip().splitlines()[-12:],
        }
        figure.notes.append(f"{wall:.1f} s wall")
        self.figures.append(figure)
        self.log(f"  find_duplicates in {wall:.1f} s")

    def _token(self) -> str:
        user, _ = get_user_model().objects.get_or_create(username="bench")
        user.groups.add(Group.objects.get(name="integrator"))
        _, plain = issue_token(user=user, name="benchmark")
        return plain

    # -- phase 3: latency, one client ---------------------------------------------------------
    def _latency(self, port: int, token: str, probes: Probes) -> None:
        client = http.HttpClient(port, token)
        warmup = self.warmup
        healthz = http.time_requests(client, probes.healthz(), warmup=warmup)
        http_floor = percentiles(healthz.ms)[1]
        figure = latency("healthz", "HTTP floor: GET /healthz (no database)", healthz.ms)
        self.figures.append(figure)
        self.meta["http_floor_p95_ms"] = http_floor

        phases = [
            ("read_rest", "REST read, full patient", probes.rest_reads),
            ("read_fhir", "FHIR read", probes.fhir_reads),
            ("update_rest", "REST update (PUT)", probes.rest_updates),
            ("register_rest", "REST register (with matching)", probes.rest_registrations),
            ("register_fhir", "FHIR create (with matching)", probes.fhir_registrations),
            ("clerk_search", "clerk search (REST q=)", probes.clerk_searches),
            ("fhir_search", "FHIR search", probes.fhir_searches),
            ("match", "FHIR $match", probes.matches),
        ]
        for key, label, build in phases:
            requests = build()
            self.log(f"  latency: {label} ({len(requests) - warmup} probes)")
            # The floor first: its capture is rolled back, so a write probe is still new.
            floor = sql_floor(token, requests, warmup=warmup)
            timed = http.time_requests(client, requests, warmup=warmup, keep_bodies=key == "match")
            sql = percentiles(floor.ms)
            figure = latency(
                key,
                label,
                timed.ms,
                floor=(sql[1] + http_floor) if sql else None,
                floor_label="its SQL replayed raw + /healthz",
            )
            figure.errors = timed.error_count
            figure.notes.extend(timed.errors)
            figure.detail = {
                "sql_floor_ms": dict(zip(("p50", "p95", "p99"), sql, strict=True)) if sql else None,
                "sql_statements_median": sorted(floor.statements)[len(floor.statements) // 2]
                if floor.statements
                else None,
                "sql_replay_failed": floor.failed,
            }
            if floor.first_error:
                figure.notes.append(f"SQL replay failed for {floor.failed}: {floor.first_error}")
            if key == "match":
                found = sum(
                    1
                    for request, body in zip(requests[warmup:], timed.bodies, strict=True)
                    if request.finds and request.finds.encode() in body
                )
                figure.detail["original_found"] = round(found / max(1, len(timed.bodies)), 3)
            self.figures.append(figure)
        client.close()

    def _audit(self, url: str, token: str, probes: Probes) -> None:
        """The same reads, alternating, against two one-worker servers that differ only by
        the audit middleware (one worker each: with several, every connection wakes them all,
        which would be measured as the audit's cost)."""
        o = self.options
        requests = probes.rest_reads()
        audited, plain = [], []
        self.log("  audit: the same reads with and without the audit middleware")
        with (
            gunicorn(database_url=url, workers=1, log=o.workdir / "gunicorn-audit.log") as full,
            gunicorn(
                database_url=url,
                workers=1,
                log=o.workdir / "gunicorn-noaudit.log",
                settings_module="bench.noaudit_settings",
            ) as bare,
        ):
            with_audit, without = http.HttpClient(full.port, token), http.HttpClient(bare.port, token)
            for i, request in enumerate(requests):
                order = (with_audit, without) if i % 2 else (without, with_audit)
                for client in order:
                    status, _, ms = client.send(request)
                    if i >= self.warmup and status == request.expect:
                        (audited if client is with_audit else plain).append(ms)
            with_audit.close()
            without.close()
        a, b = percentiles(audited), percentiles(plain)
        figure = Figure("audit_overhead", "audit: added to a REST read", "ms", samples=len(audited))
        if a and b:
            figure.p50, figure.p95, figure.p99 = (x - y for x, y in zip(a, b, strict=True))
            figure.floor = b[1]
            figure.floor_label = "p95 of the same read without the audit middleware"
            figure.detail = {"audited_ms": a, "unaudited_ms": b}
        self.figures.append(figure)

        # The audit's own cost, in this process: one event appended to the hash chain.
        uuids = [r.path.rsplit("/", 2)[-2] for r in requests]
        ms = []
        for i, uuid in enumerate(uuids):
            started = time.perf_counter()
            with transaction.atomic():
                audit.record(action="read", patients=[uuid], status_code=200)
            if i >= self.warmup:
                ms.append((time.perf_counter() - started) * 1000)
        self.figures.append(latency("audit_record", "audit: record() + chain seal, in-process", ms))

    # -- phase 4: throughput ----------------------------------------------------------------------
    def _throughput(self, port: int, token: str, probes: Probes, generator: str) -> None:
        o = self.options
        run = http.wrk_load if generator == "wrk" else http.python_load
        mixes = [
            ("rps_healthz", "throughput: GET /healthz", probes.healthz()),
            ("rps_drf", "throughput: DRF auth + 1 lookup (404)", probes.missing_reads()),
            ("rps_read", "throughput: REST read mix", probes.rest_reads()),
            ("rps_search", "throughput: clerk search mix", probes.clerk_searches()),
            ("rps_match", "throughput: $match mix", probes.matches()),
        ]
        floor = None
        for key, label, requests in mixes:
            self.log(f"  {label} ({o.duration:g} s, {o.connections} connections, {generator})")
            load = run(port, token, requests, seconds=o.duration, connections=o.connections)
            figure = Figure(
                key, f"{label} [{load.generator}]", "req/s", value=load.rate, samples=load.requests
            )
            # wrk counts every non-2xx answer; the 404 mix expects nothing else.
            figure.errors = 0 if (key == "rps_drf" and load.generator == "wrk") else load.unexpected
            if floor is None:
                floor = load.rate
            else:
                figure.floor, figure.floor_label = floor, "GET /healthz rate"
            figure.detail = {
                "requests": load.requests,
                "seconds": load.seconds,
                "latency_ms": load.latency_ms,
            }
            self.figures.append(figure)

    def _rss(self, peak: dict[int, float], idle: dict[int, float]) -> None:
        figure = Figure(
            "worker_rss",
            f"gunicorn worker peak RSS (max of {len(peak)})",
            "MB",
            value=max(peak.values(), default=None),
            floor=max(idle.values(), default=None),
            floor_label="a worker's peak right after boot",
        )
        figure.detail = {"peak_mb": sorted(peak.values()), "after_boot_mb": sorted(idle.values())}
        self.figures.append(figure)

    # -- output --------------------------------------------------------------------------------------
    def render(self) -> list[str]:
        m = self.meta
        lines = [
            f"MPI benchmark: {m['patients']:,} patients, {m['probes']} probes per latency figure, "
            f"seed {m['seed']}"
            + (f" (reused database: {m['patients_in_database']:,} patients)" if m.get("reused") else ""),
            f"{m['cpus']} CPUs; load average before {m['load_average_before']}, after "
            f"{m.get('load_average_after', '?')}; Python: a 10M-addition loop in {m['python_loop_s']} s; "
            f"gunicorn {m['gunicorn_workers']} sync workers; "
            f"load generator {m['load_generator']} ({m['connections']} connections, "
            f"{m['duration_s']:g} s per mix)",
            "Latency: one client over HTTP on loopback; floor = the request's own SQL replayed raw + the "
            "/healthz round trip. Rates: floor = the /healthz rate. Targets are issue 8/9's, stated at 1M.",
            "",
            *table(self.figures),
        ]
        notes = [f"  {f.label}: {n}" for f in self.figures for n in f.notes if f.errors or "failed" in n]
        if notes:
            lines += ["", "Notes:", *notes]
        lines += ["", f"JSON: {self.options.json_path}"]
        return lines
