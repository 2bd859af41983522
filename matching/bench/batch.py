"""The batch detection benchmark (``manage.py bench_batch``, ``make bench-batch``).

Loads N synthetic patients with planted duplicates into a database of its own (the
search benchmark's generator and COPY loader), runs one whole ``find_duplicates``
pass over them and reports pairs, seconds per phase, candidates by grade and the
recall of the planted pairs, among the SQL pairs and among the candidates.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections

from matching import pairs as pair_sql
from matching.model import MatchGrade
from matching.models import MatchCandidate
from search.bench.generator import PeopleGenerator
from search.bench.loader import PLANTED_TABLE, bulk_load

DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
AT_LEAST_POSSIBLE = (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE)


class BenchError(Exception):
    pass


def use_database(name: str, *, fresh: bool) -> None:
    """Switch the default connection to ``name`` on the same server (created, migrated)."""
    if not DB_NAME.match(name):
        raise BenchError(f"{name!r} is not a plain database name (a-z, 0-9, _).")
    if name == settings.DATABASES["default"]["NAME"]:
        raise BenchError("--database must name a benchmark database, not the configured one.")
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
        if exists and fresh:
            cursor.execute(f'DROP DATABASE "{name}"')
            exists = False
        if not exists:
            cursor.execute(f'CREATE DATABASE "{name}"')
    connections["default"].close()
    settings.DATABASES["default"]["NAME"] = name
    connections["default"].settings_dict["NAME"] = name
    call_command("migrate", verbosity=0, interactive=False)


def has_planted_table() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [PLANTED_TABLE])
        return cursor.fetchone()[0]


def load(count: int, *, seed: int, duplicate_rate: float, progress: Callable[[int], None]) -> float:
    """Load ``count`` generated patients; returns the seconds it took."""
    generator = PeopleGenerator(seed, duplicate_rate=duplicate_rate)
    return bulk_load(generator, count, progress=progress)["total"]


def planted_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {PLANTED_TABLE}")
        return cursor.fetchone()[0]


def planted_among_pairs() -> int:
    """Planted pairs in the pass's pair table (call while it exists)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*) FROM {PLANTED_TABLE} t JOIN {pair_sql.PAIRS_TABLE} p
                ON p.a = least(t.original_id, t.duplicate_id)
               AND p.b = greatest(t.original_id, t.duplicate_id)"""
        )
        return cursor.fetchone()[0]


def planted_among_candidates() -> dict[str, int]:
    """Planted pairs with a candidate, by grade."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT c.grade, count(*) FROM {PLANTED_TABLE} t JOIN {MatchCandidate._meta.db_table} c
                ON c.patient_a_id = least(t.original_id, t.duplicate_id)
               AND c.patient_b_id = greatest(t.original_id, t.duplicate_id)
                GROUP BY c.grade"""
        )
        return dict(cursor.fetchall())


def clear_candidates() -> int:
    """Empty the candidate queue of the benchmark database (a first pass is measured)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {MatchCandidate._meta.db_table}")
        n = cursor.fetchone()[0]
        cursor.execute(
            f"TRUNCATE {MatchCandidate._meta.db_table}, {MatchCandidate.history.model._meta.db_table}"
        )
    return n


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.started
