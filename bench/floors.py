"""The SQL floor of a request: the same SQL statements, sent raw, without Python or HTTP.

Each probe is first run in this process through Django's test client inside a
transaction that is rolled back, with every statement captured as sent (Django binds
parameters client-side, so the captured text is the exact SQL). Then the statements
are replayed in order on a plain psycopg connection, in one transaction rolled back
too, fetching every row. The replay's time is what the database alone needs for the
request — token lookup, the view's queries, matching, the audit row, everything —
so ``figure / floor`` is the cost of the Python and HTTP layers on this machine, now.

Writes replay against ids of the rolled-back capture (Django's foreign keys are
DEFERRABLE INITIALLY DEFERRED and the replay never commits), so a write's floor is a
lower bound: an ``UPDATE ... WHERE id = <gone>`` touches no row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench.data import Request


class _Rollback(Exception):
    pass


def capture(client: Client, token: str, request: Request) -> tuple[int, list[str]]:
    """(status, the SQL statements) of ``request`` served in this process, then undone."""
    headers = {"Authorization": f"Bearer {token}", **request.headers}
    status = 0
    # CaptureQueriesContext slices a bounded log (9,000 queries): start each capture empty.
    connection.queries_log.clear()
    try:
        with transaction.atomic(), CaptureQueriesContext(connection) as captured:
            response = client.generic(
                request.method,
                request.path,
                data=request.body or b"",
                content_type=request.content_type or "application/octet-stream",
                headers=headers,
            )
            status = response.status_code
            raise _Rollback
    except _Rollback:
        pass
    return status, [q["sql"] for q in captured.captured_queries]


def raw_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    params = {
        "dbname": settings["NAME"],
        "user": settings["USER"] or None,
        "password": settings["PASSWORD"] or None,
        "host": settings["HOST"] or None,
        "port": settings["PORT"] or None,
        "options": settings.get("OPTIONS", {}).get("options"),
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v})


def replay(conn: psycopg.Connection, statements: list[str]) -> float:
    """Milliseconds to run ``statements`` in one transaction (rolled back), fetching all rows."""
    started = time.perf_counter()
    try:
        with conn.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql.encode())
                if cursor.description is not None:
                    cursor.fetchall()
    finally:
        conn.rollback()
    return (time.perf_counter() - started) * 1000


@dataclass
class Floor:
    ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)  # statements per request
    failed: int = 0  # requests whose replay failed (left out)
    first_error: str = ""


def sql_floor(token: str, requests: list[Request], *, warmup: int) -> Floor:
    client = Client()
    floor = Floor()
    with raw_connection() as conn:
        for i, request in enumerate(requests):
            _, statements = capture(client, token, request)
            try:
                ms = replay(conn, statements)
            except psycopg.Error as exc:
                floor.failed += 1
                floor.first_error = floor.first_error or f"{type(exc).__name__}: {exc}"[:300]
                continue
            if i >= warmup:
                floor.ms.append(ms)
                floor.statements.append(len(statements))
    return floor
