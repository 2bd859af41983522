"""Time ``find_duplicates`` over N synthetic patients with planted duplicates.

    manage.py bench_batch --database mpi_bench_batch --patients 100000
    manage.py bench_batch --database mpi_bench_batch_1m --patients 1000000 --workers 2

--database NAME is a database of its own on the same server, created and loaded when
empty (--fresh drops it first); a loaded one is measured again as it is. Each run
empties its candidate queue first (a first pass; --keep-candidates measures a pass
over the previous one's candidates instead). Not a test: it prints figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from matching import batch
from matching.bench import batch as bench
from matching.frequencies import refresh_name_frequencies
from matching.pairs import DEFAULT_WINDOW
from patients.models import Patient


class Command(BaseCommand):
    help = "Load synthetic patients (if the benchmark database is empty) and time one find_duplicates pass."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="mpi_bench_batch", help="Benchmark database (own).")
        parser.add_argument("--fresh", action="store_true", help="Drop and reload the database first.")
        parser.add_argument("--patients", type=int, default=100_000, help="Patients to load when empty.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--duplicate-rate", type=float, default=0.05)
        parser.add_argument("--load-only", action="store_true", help="Load, do not measure.")
        parser.add_argument("--keep-candidates", action="store_true", help="Do not empty the queue first.")
        parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--chunk-size", type=int, default=batch.DEFAULT_CHUNK_PATIENTS)
        parser.add_argument("--limit-chunks", type=int, help="Stop after N chunks (a partial measurement).")

    def handle(self, *args, **opts):
        out = self.stdout.write
        if opts["patients"] < 1 or opts["workers"] < 0 or opts["window"] < 1 or opts["chunk_size"] < 1:
            raise CommandError("--patients, --window and --chunk-size must be >= 1, --workers >= 0.")
        try:
            bench.use_database(opts["database"], fresh=opts["fresh"])
        except bench.BenchError as exc:
            raise CommandError(str(exc)) from exc
        patients = Patient.all_objects.count()
        if not patients:
            count = opts["patients"]
            out(
                f"Loading {count:,} synthetic patients into {opts['database']} "
                f"(load average {bench.load_average()})"
            )
            with tqdm(total=count, unit="patient", disable=opts["verbosity"] < 1) as bar:
                seconds = bench.load(
                    count, seed=opts["seed"], duplicate_rate=opts["duplicate_rate"], progress=bar.update
                )
            patients = Patient.all_objects.count()
            out(f"Loaded in {seconds:.0f} s (load average {bench.load_average()})")
        elif patients != opts["patients"]:
            out(f"{opts['database']} holds {patients:,} patients (not --patients): measuring those.")
        if patients and not bench.has_planted_table():
            raise CommandError(
                f"{opts['database']} holds patients but no planted pairs: not a benchmark database."
            )
        if opts["load_only"]:
            return
        self._measure(opts, patients)

    def _measure(self, opts, patients: int) -> None:
        out = self.stdout.write
        planted = bench.planted_count()
        if not opts["keep_candidates"]:
            bench.clear_candidates()
        clock = bench.Stopwatch()
        refresh_name_frequencies()
        frequencies = clock()
        counted = {}

        def on_pairs() -> None:
            counted["planted"] = bench.planted_among_pairs()

        options = batch.BatchOptions(
            window=opts["window"],
            chunk_patients=opts["chunk_size"],
            workers=opts["workers"],
            limit_chunks=opts["limit_chunks"],
        )
        load_before = bench.load_average()
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = batch.Checkpoint(Path(tmp) / "checkpoint.json")
            clock = bench.Stopwatch()
            totals, complete = batch.run_batch(
                checkpoint=checkpoint, options=options, log=out, on_pairs=on_pairs
            )
            elapsed = clock()
        load_after = bench.load_average()

        found = bench.planted_among_candidates()
        out("")
        out(
            f"find_duplicates benchmark: {patients:,} patients in {connection.settings_dict['NAME']}, "
            f"{planted:,} planted pairs, window {opts['window']}, {opts['workers']} workers"
            + ("" if complete else f" (stopped after {totals.chunks} chunks)")
        )
        out(f"load average before {load_before}, after {load_after}")
        out(f"name frequencies {frequencies:.1f} s; the pass {elapsed:.1f} s")
        out("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in totals.seconds.items()))
        out(
            f"pairs {totals.pairs_generated:,} "
            f"({totals.pairs_generated / max(1, patients):.1f} per patient), "
            f"scored {totals.pairs_scored:,}, of which rejected early {totals.rejected_early:,}"
        )
        out(f"{'grade':<15}{'pairs':>12}{'candidates':>12}{'planted':>10}")
        for grade in batch.GRADES:
            g = grade.value
            cands = (
                "-"
                if grade == "certainly-not"
                else f"{totals.opened.get(g, 0) + totals.refreshed.get(g, 0):,}"
            )
            planted_here = "-" if grade == "certainly-not" else f"{found.get(g, 0):,}"
            out(f"{g:<15}{totals.scored.get(g, 0):>12,}{cands:>12}{planted_here:>10}")
        if "planted" in counted:
            out(
                f"planted pairs among the SQL pairs: {counted['planted']:,} / {planted:,} = "
                f"{counted['planted'] / max(1, planted):.4f}"
            )
        graded = sum(found.get(g, 0) for g in bench.AT_LEAST_POSSIBLE)
        out(
            f"planted pairs graded possible or above: {graded:,} / {planted:,} "
            f"= {graded / max(1, planted):.4f}"
        )
