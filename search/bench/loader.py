"""Fast bulk load for the benchmark: COPY into bare tables, then build the indexes.

Bypasses the write services (no history rows, no per-row signal) for speed, which is
acceptable for a throw-away benchmark database only. The index rows are still built
by ``search.indexing.index_values``, the function the signal path uses, so they are
the rows the normal write path would produce (``check_search_index`` agrees).
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from queue import Empty

from django.db import connection, connections, transaction

from patients.data import PatientData
from search.bench.generator import PeopleGenerator
from search.indexing import INDEX_FIELDS, index_values, refresh_vocabulary

TABLES = {
    "patients_patient": (
        "id", "uuid", "active", "gender", "birth_date", "deceased", "marital_status", "version",
        "created_at", "updated_at",
    ),
    "patients_name": ("patient_id", "use", "family", "given", "prefix", "suffix", "text", "primary"),
    "patients_identifier": ("patient_id", "use", "type", "system", "value", "assigner", "live"),
    "patients_address": (
        "patient_id", "use", "type", "line", "city", "district", "state", "postal_code", "country", "text",
        "primary",
    ),
    "patients_contact": ("patient_id", "system", "value", "normalized_value", "use", "rank"),
    "search_patientindex": ("patient_id", *INDEX_FIELDS),
}  # fmt: skip
PLANTED_TABLE = "bench_search_planted"


def _rows(pid: int, data: PatientData, now: datetime) -> dict[str, list[tuple]]:
    values = index_values(data)
    return {
        "patients_patient": [
            (pid, uuid.uuid4(), data.active, data.gender, data.birth_date, False, "", 1, now, now)
        ],
        "patients_name": [
            (pid, n.use, n.family, list(n.given), [], [], n.text, n.primary) for n in data.names
        ],
        "patients_identifier": [
            (pid, i.use, i.type, i.system, i.value, i.assigner, True) for i in data.identifiers
        ],
        "patients_address": [
            (
                pid,
                a.use,
                a.type,
                list(a.line),
                a.city,
                a.district,
                a.state,
                a.postal_code,
                a.country,
                a.text,
                a.primary,
            )
            for a in data.addresses
        ],
        "patients_contact": [
            (pid, c.system, c.value, c.normalized_value, c.use, c.rank) for c in data.contacts
        ],
        "search_patientindex": [(pid, *(values[f] for f in INDEX_FIELDS))],
    }


def _secondary_indexes(tables: Iterable[str]) -> list[tuple[str, str]]:
    """(name, definition) of the indexes that back no constraint: safe to drop and rebuild."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY(%s) AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            [list(tables)],
        )
        return cursor.fetchall()


def ensure_planted_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {PLANTED_TABLE} "
            "(original_id bigint NOT NULL, duplicate_id bigint PRIMARY KEY, corruptions text[] NOT NULL)"
        )


def _foreign_keys(tables: Iterable[str]) -> list[tuple[str, str, str]]:
    """(table, name, definition) of the foreign keys on these tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [list(tables)],
        )
        return cursor.fetchall()


def bulk_load(
    generator: PeopleGenerator,
    count: int,
    *,
    chunk: int = 5000,
    workers: int = 2,
    progress: Callable[[int], None] = lambda n: None,
) -> dict[str, float]:
    """Load ``count`` generated people (ids from 1, into an empty database) and their
    planted pairs; returns timings in seconds.

    ``workers`` child processes generate people and build the COPY text while this
    one streams it to PostgreSQL, so Python and the server overlap.
    """
    ensure_planted_table()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    indexes = _secondary_indexes(TABLES)
    foreign_keys = _foreign_keys(TABLES)
    with connection.cursor() as cursor:
        for table, name, _ in foreign_keys:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    try:
        timings["generator_wait"] = _copy_all(
            generator, count, chunk=chunk, workers=workers, progress=progress
        )
        timings["copy"] = time.perf_counter() - started
    finally:
        index_started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            for _, definition in indexes:
                cursor.execute(definition)
            for table, name, definition in foreign_keys:
                cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('patients_patient', 'id'), "
                "(SELECT coalesce(max(id), 1) FROM patients_patient))"
            )
        timings["indexes"] = time.perf_counter() - index_started
    analyze_started = time.perf_counter()
    refresh_vocabulary()
    with connection.cursor() as cursor:
        for table in (*TABLES, "search_nameword", PLANTED_TABLE):
            cursor.execute(f"VACUUM ANALYZE {table}")
    timings["analyze"] = time.perf_counter() - analyze_started
    timings["total"] = time.perf_counter() - started
    return timings


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _array(values) -> str:
    items = [str(v) for v in values]
    if not items:
        return "{}"
    joined = '","'.join(items)
    if '"' in joined or "\\" in joined:
        joined = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in items)
    return ('{"' + joined + '"}').translate(_COPY_ESCAPES)


# COPY text format per Python type; a dict lookup is much faster than isinstance chains.
_FORMAT: dict[type, Callable] = {
    str: lambda v: v.translate(_COPY_ESCAPES),
    int: str,
    bool: lambda v: "t" if v else "f",
    type(None): lambda v: "\\N",
    list: _array,
    tuple: _array,
    date: date.isoformat,
    datetime: datetime.isoformat,
    uuid.UUID: str,
    dict: lambda v: json.dumps(v, separators=(",", ":")).translate(_COPY_ESCAPES),  # jsonb
}


def _copy_text(rows: list[tuple]) -> str:
    fmt = _FORMAT
    return "".join("\t".join([fmt[type(v)](v) for v in row]) + "\n" for row in rows)


def _produce(generator: PeopleGenerator, count: int, chunk: int, worker: int, workers: int, queue) -> None:
    """Child process: turn this worker's share of the chunks into COPY text."""
    now = datetime.now(tz=UTC)
    for index in range(worker, -(-count // chunk), workers):
        batch: dict[str, list[tuple]] = {table: [] for table in (*TABLES, PLANTED_TABLE)}
        done = 0
        for person in generator.chunk(index, chunk, count):
            pid = index * chunk + done + 1
            for table, rows in _rows(pid, person.data, now).items():
                batch[table].extend(rows)
            if person.duplicate_of is not None:
                batch[PLANTED_TABLE].append((person.duplicate_of + 1, pid, list(person.corruptions)))
            done += 1
        queue.put((done, {t: _copy_text(rows) for t, rows in batch.items()}))
    queue.put(None)


def _copy_all(
    generator: PeopleGenerator, count: int, *, chunk: int, workers: int, progress: Callable[[int], None]
) -> float:
    """Stream the people to PostgreSQL; returns the seconds spent waiting for the generators.

    Ids are explicit, so chunks may arrive in any order.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue(maxsize=2 * workers)
    connections.close_all()  # the children must not share this process's connection
    producers = [
        context.Process(target=_produce, args=(generator, count, chunk, w, workers, queue), daemon=True)
        for w in range(workers)
    ]
    for producer in producers:
        producer.start()
    waited, running = 0.0, workers
    try:
        while running:
            started = time.perf_counter()
            try:
                item = queue.get(timeout=1)
            except Empty:  # a generator that died would never send its end mark
                if any(p.exitcode for p in producers):
                    raise RuntimeError("A data generator process failed.") from None
                continue
            finally:
                waited += time.perf_counter() - started
            if item is None:
                running -= 1
                continue
            done, texts = item
            _flush(texts)
            progress(done)
    finally:
        for producer in producers:
            producer.join(timeout=5)
            if producer.is_alive():
                producer.terminate()
    if any(p.exitcode for p in producers):
        raise RuntimeError("A data generator process failed.")
    return waited


def _flush(texts: dict[str, str]) -> None:
    columns = {**TABLES, PLANTED_TABLE: ("original_id", "duplicate_id", "corruptions")}
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        for table, text in texts.items():
            if text:
                names = ", ".join(f'"{c}"' for c in columns[table])
                with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    copy.write(text)
