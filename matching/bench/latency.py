"""match_patient latency over a large registry, bulk-loaded by the search benchmark's
loader (COPY + the same index rows as the write path; throw-away database only)."""

from __future__ import annotations

import sys
import time

from django.core.management import call_command, get_commands
from django.db import connection

from matching.bench.registry import reset_registry
from matching.services import forget_cached_matcher, match_patient
from patients.models import Patient
from patients.queries import load_patient_data
from search.bench.generator import PeopleGenerator
from search.bench.loader import PLANTED_TABLE, bulk_load
from search.bench.measure import percentiles, planted_sample

WARMUP = 30


def _loaded_before(patients: int) -> bool:
    """Whether an earlier latency run left exactly this many bulk-loaded patients."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [PLANTED_TABLE])
        if not cursor.fetchone()[0]:
            return False
    return Patient.all_objects.count() == patients


def measure_latency(patients: int, *, probes: int = 500, seed: int = 1, reuse: bool = False) -> dict:
    """Load ``patients`` synthetic patients, then time match_patient with planted
    duplicates as probes (their own record excluded). ``reuse`` keeps an earlier
    latency run's load of the same size (to re-time on a quiet machine)."""
    timings = {"total": 0.0}
    if not (reuse and _loaded_before(patients)):
        reset_registry()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {PLANTED_TABLE}")
        loaded = [0]

        def progress(n: int) -> None:
            loaded[0] += n
            print(f"\r  latency: loaded {loaded[0]}/{patients}", end="", file=sys.stderr, flush=True)

        timings = bulk_load(PeopleGenerator(seed, duplicate_rate=0.05), patients, progress=progress)
        print(file=sys.stderr)
    # Term frequencies make the scoring realistic (and cost one query per probe).
    tf_refreshed = "refresh_name_frequencies" in get_commands()
    if tf_refreshed:
        call_command("refresh_name_frequencies", verbosity=0)
    forget_cached_matcher()
    pairs = planted_sample(probes + WARMUP, seed)
    data = load_patient_data([duplicate for _, duplicate, _ in pairs])
    samples, found = [], 0
    for i, (original, duplicate, _) in enumerate(pairs):
        started = time.perf_counter()
        outcomes = match_patient(data[duplicate], exclude=duplicate)
        elapsed = (time.perf_counter() - started) * 1000
        if i >= WARMUP:
            samples.append(elapsed)
            found += any(o.patient_id == original for o in outcomes)
    p50, p95, p99 = percentiles(samples)
    return {
        "patients": patients,
        "probes": len(samples),
        "load_seconds": round(timings["total"], 1),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "original_in_results": found / len(samples) if samples else 0.0,
        "term_frequencies_refreshed": tf_refreshed,
    }
