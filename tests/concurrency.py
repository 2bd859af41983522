"""Running one callable on many threads at once, each on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


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
    return results
