"""Benchmark clerk search and candidate retrieval over N synthetic patients.

    manage.py bench_search --patients 100000 --probes 1000 --seed 1
    manage.py bench_search --database mpi_bench --fresh --patients 1000000

Without --database it uses the configured database, and only if it holds no patients
(it never writes benchmark data next to real data). --database NAME uses a database
of that name on the same server, created if missing; --fresh drops and recreates it
first. --reuse measures the data a previous run loaded. Not a test: it prints figures.
"""

from __future__ import annotations

import re
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections
from tqdm import tqdm

from patients.models import Patient
from search.bench import measure
from search.bench.generator import PeopleGenerator
from search.bench.loader import PLANTED_TABLE, bulk_load
from search.blocking import DEFAULT_LIMIT

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Command(BaseCommand):
    help = "Load synthetic patients with planted duplicates; time search and candidate retrieval."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=100_000)
        parser.add_argument("--probes", type=int, default=1000, help="Probes per measurement (>= 500).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--duplicate-rate", type=float, default=0.05)
        parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="Candidate limit per probe.")
        parser.add_argument(
            "--database", help="Use (and create if missing) this database on the same server."
        )
        parser.add_argument("--fresh", action="store_true", help="Drop and recreate --database first.")
        parser.add_argument("--reuse", action="store_true", help="Measure the benchmark data already loaded.")
        parser.add_argument(
            "--show-plans", action="store_true", help="Print each block's full EXPLAIN ANALYZE."
        )

    def handle(self, *args, **opts):
        if opts["database"]:
            self._use_database(opts["database"], fresh=opts["fresh"])
        elif opts["fresh"]:
            raise CommandError("--fresh only applies to a --database of its own.")
        existing = Patient.all_objects.count()
        load_seconds = None
        if existing and not opts["reuse"]:
            raise CommandError(
                f"The database {connection.settings_dict['NAME']!r} already holds {existing} patients; "
                "refusing to add benchmark data to it. Use --reuse to measure a previous benchmark "
                "load, or --database NAME --fresh for a database of its own."
            )
        if existing:
            if not self._has_planted_table():
                raise CommandError(
                    "--reuse needs a database loaded by bench_search (no planted pairs found)."
                )
        else:
            load_seconds = self._load(opts)
        self._measure(opts, load_seconds)

    # -- database --------------------------------------------------------------
    def _use_database(self, name: str, *, fresh: bool) -> None:
        if not _DB_NAME.match(name):
            raise CommandError(f"{name!r} is not a plain database name (a-z, 0-9, _).")
        configured = settings.DATABASES["default"]["NAME"]
        if name == configured:
            raise CommandError("--database must name a benchmark database, not the configured one.")
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            exists = cursor.fetchone() is not None
            if exists and fresh:
                self.stdout.write(f"Dropping benchmark database {name}")
                cursor.execute(f'DROP DATABASE "{name}"')
                exists = False
            if not exists:
                cursor.execute(f'CREATE DATABASE "{name}"')
        connections["default"].close()
        settings.DATABASES["default"]["NAME"] = name
        connections["default"].settings_dict["NAME"] = name
        call_command("migrate", verbosity=0, interactive=False)

    def _has_planted_table(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [PLANTED_TABLE])
            return cursor.fetchone()[0]

    # -- load ------------------------------------------------------------------
    def _load(self, opts) -> dict[str, float]:
        count = opts["patients"]
        self.stdout.write(f"Loading {count:,} synthetic patients into {connection.settings_dict['NAME']}")
        generator = PeopleGenerator(opts["seed"], duplicate_rate=opts["duplicate_rate"])
        with tqdm(total=count, unit="patient", disable=opts["verbosity"] < 1) as bar:
            timings = bulk_load(generator, count, progress=bar.update)
        return timings

    # -- measure ---------------------------------------------------------------
    def _measure(self, opts, load: dict[str, float] | None) -> None:
        out = self.stdout.write
        probes, seed, limit = opts["probes"], opts["seed"], opts["limit"]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {PLANTED_TABLE}")
            planted = cursor.fetchone()[0]
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('search_patientindex'))")
            index_size = cursor.fetchone()[0]
        patients = Patient.all_objects.count()
        pairs = measure.planted_sample(probes, seed)

        started = time.perf_counter()
        recall = measure.measure_candidates(pairs, limit=limit)
        search = measure.measure_search(probes, seed)
        measured = time.perf_counter() - started

        out("")
        out(f"Search benchmark: {patients:,} patients, {planted:,} planted duplicate pairs, seed {seed}")
        if load:
            out(
                f"Load: COPY {load['copy']:.1f} s (of which waiting for the generator "
                f"{load['generator_wait']:.1f} s), indexes {load['indexes']:.1f} s, "
                f"analyze {load['analyze']:.1f} s, total {load['total']:.1f} s "
                f"({patients / load['total']:,.0f} patients/s)"
            )
        out(f"Index table with its indexes: {index_size}; measured in {measured:.1f} s")
        out("")
        out(f"{'':34}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'probes':>8}{'found':>8}")

        def line(label: str, samples: list[float], found: str = "") -> None:
            p50, p95, p99 = measure.percentiles(samples)
            out(f"{label:34}{p50:9.2f}{p95:9.2f}{p99:9.2f}{len(samples):8}{found:>8}")

        line(
            f"candidate retrieval (limit {limit})",
            recall.timings,
            f"{recall.found / max(1, recall.total):.3f}",
        )
        line(
            "clerk search, all forms",
            search.all(),
            f"{sum(search.hits.values()) / max(1, len(search.all())):.3f}",
        )
        for form, samples in sorted(search.samples.items()):
            line(f"  {form}", samples, f"{search.hits[form] / len(samples):.3f}")
        out("(clerk search 'found' = the patient is in the top 10; a bare common name legitimately is not)")
        out("")
        out(
            f"Blocking recall: {recall.found / max(1, recall.total):.4f} ({recall.found}/{recall.total}); "
            f"candidates per probe: mean {sum(recall.candidates) / max(1, len(recall.candidates)):.1f}, "
            f"max {max(recall.candidates, default=0)}"
        )
        out("Recall by corruption: " + ", ".join(
            f"{kind} {found}/{total}" for kind, (found, total) in sorted(recall.by_corruption.items())
        ))  # fmt: skip
        out(
            "Blocks that found the original: "
            + ", ".join(f"{b} {n}" for b, n in recall.found_by.most_common())
        )
        out(
            "Found by one block only: " + ", ".join(f"{b} {n}" for b, n in recall.only_found_by.most_common())
        )
        for original, duplicate, kinds in recall.misses[:10]:
            out(f"  missed: original {original}, duplicate {duplicate}: {', '.join(kinds)}")
        self._plans(pairs, show=opts["show_plans"])

    def _plans(self, pairs, *, show: bool) -> None:
        """Every block must use an index: EXPLAIN ANALYZE each block of a full probe."""
        if not pairs:
            return
        duplicate = max(pairs, key=lambda p: 0 if "missing_phone" in p[2] else 1)[1]
        plans = measure.block_plans(duplicate)
        self.stdout.write("")
        self.stdout.write(f"Block plans for the probe of patient {duplicate} (EXPLAIN ANALYZE):")
        for block, plan in plans.items():
            seq = "Seq Scan on search_patientindex" in plan
            flag = "  <-- SEQUENTIAL SCAN" if seq else ""
            self.stdout.write(f"  {block:16} {measure.plan_summary(plan)}{flag}")
            if show:
                self.stdout.write("    " + plan.replace("\n", "\n    "))
