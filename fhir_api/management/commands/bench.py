"""The whole-system benchmark (issue 8): ``manage.py bench``, ``make bench``; see docs/bench.md.

    manage.py bench --patients 100000
    manage.py bench --patients 2000 --probes 100 --duration 5 --database mpi_bench_smoke

Drops and re-creates ``--database`` (never the configured one), writes N synthetic
patients to a CSV, imports them, runs find_duplicates, starts gunicorn and prints one
table of latencies, rates and targets; the JSON goes to ``--json``. The suite lives in
the top-level ``bench`` package; the command is here because only ``fhir_api`` may
depend on every app (ARCHITECTURE.md), like ``import_patients``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench.suite import GENERATORS, Options, Suite
from matching.bench.batch import BenchError


class Command(BaseCommand):
    help = "Generate, import and benchmark N synthetic patients end to end (docs/bench.md)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--patients", type=int, default=100_000, help="Patients to generate (default 100,000)."
        )
        parser.add_argument("--probes", type=int, default=500, help="Timed requests per latency figure.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--database", default="mpi_bench", help="Benchmark database, dropped and re-created."
        )
        parser.add_argument(
            "--duration", type=float, default=20.0, help="Seconds of load per throughput mix."
        )
        parser.add_argument("--connections", type=int, default=8, help="Concurrent connections under load.")
        parser.add_argument(
            "--workers", type=int, default=0, help="gunicorn workers (default: gunicorn.conf.py's)."
        )
        parser.add_argument(
            "--load-generator", choices=GENERATORS, default="auto", help="auto: wrk if installed."
        )
        parser.add_argument("--json", default="var/bench.json", help="Where to write the figures.")
        parser.add_argument("--workdir", default="var/bench", help="Generated file, logs, checkpoints.")
        parser.add_argument("--drop", action="store_true", help="Drop the benchmark database at the end.")
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="Measure the database an earlier run loaded: no generate, import or find_duplicates.",
        )

    def handle(self, *args, **opts):
        if opts["patients"] < 10 or opts["probes"] < 5 or opts["duration"] <= 0 or opts["connections"] < 1:
            raise CommandError("--patients >= 10, --probes >= 5, --duration > 0 and --connections >= 1.")
        # The floors serve requests in this process: its request lines would drown the output.
        logging.getLogger("mpi.requests").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message="No directory at")
        options = Options(
            patients=opts["patients"],
            probes=opts["probes"],
            seed=opts["seed"],
            database=opts["database"],
            duration=opts["duration"],
            connections=opts["connections"],
            workers=opts["workers"],
            generator=opts["load_generator"],
            json_path=Path(opts["json"]),
            workdir=Path(opts["workdir"]),
            drop=opts["drop"],
            reuse=opts["reuse"],
        )
        suite = Suite(options, log=self.stderr.write)
        try:
            suite.run()
        except (BenchError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        for line in suite.render():
            self.stdout.write(line)
