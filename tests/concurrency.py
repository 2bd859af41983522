"""Running one callable on many threads at once, each on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from django.db import connection, transaction


def run_at_once(target: Callable[[int], object], count: int = 16, *, timeout: float = 120) -> list:
    """``target(i)`` for i in range(count), released together by a barrier.

    Returns each call's result, or the exception it raised (for the test to assert on).
    Each thread closes its connection, so the test database can be dropped after.
    """
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    hung = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not hung, f"calls {hung} still running after {timeout} s (a deadlock?)"
    return results


def start_thread(target: Callable[[], object]) -> threading.Thread:
    """``target()`` started on a thread of its own, on its own database connection
    (closed when it ends, so the test database can be dropped after)."""

    def run() -> None:
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@contextmanager
def patient_held_with_a_short_statement_timeout(patient, *, timeout_ms: int = 300):
    """Another connection holds the writers' lock on ``patient`` while this one's statements
    time out after ``timeout_ms``: a write to the patient here waits, then is cancelled
    (query_canceled), as a web worker's would behind a lock held too long."""
    from patients.models import Patient

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            Patient.all_objects.select_for_update(no_key=True).get(pk=patient.pk)
            held.set()
            release.wait(timeout=60)

    holder = start_thread(hold)
    try:
        assert held.wait(timeout=30), "the lock was never taken"
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [str(timeout_ms)])
        yield
    finally:
        release.set()
        holder.join(timeout=60)
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
