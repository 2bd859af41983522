"""Retrying a write that PostgreSQL aborted: a deadlock, a serialization failure, or a
lock that was not available (a ``NOWAIT`` or ``lock_timeout`` lock).

Writers lock rows in one documented order (patients by key, then candidate rows by key),
but a write touches rows decided at run time (the matcher's candidates, linked patients),
so two writers can still meet in opposite orders; PostgreSQL then aborts one of them.
The aborted write changed nothing: running it again is the right answer, and the
caller never sees the collision. Only the outermost transaction can be retried: inside a
caller's transaction the error goes up to whoever owns it (``is_retryable`` lets the API
layers answer 409 "retry" then).
"""

from __future__ import annotations

import logging
import random
import time
from functools import wraps

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

# deadlock_detected, serialization_failure, lock_not_available (NOWAIT, lock_timeout).
RETRYABLE = {"40P01", "40001", "55P03"}
ATTEMPTS = 12
# Back-off before attempt k+1: uniform in [0, min(CAP, BASE * 2**k)] seconds ("full
# jitter"). Writers that collided once tend to collide again in step; a widening random
# wait separates them (at most ~3.6 s over all attempts, ~1.8 s expected).
BACKOFF_BASE = 0.01
BACKOFF_CAP = 0.5


def backoff(attempt: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def timed_out(exc: BaseException) -> bool:
    """The statement ran past ``statement_timeout`` (query_canceled): the server is slow or
    a lock was held too long, not a bug; the API layers answer 503 with Retry-After."""
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) == "57014"


def is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__ if isinstance(exc, OperationalError) else exc
    return getattr(cause, "sqlstate", None) in RETRYABLE


def retry_on_conflict(func):
    """Decorate a write service (outside its ``transaction.atomic``)."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        if connection.in_atomic_block:
            return func(*args, **kwargs)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                if attempt == ATTEMPTS or not is_retryable(exc):
                    raise
                logger.info("%s: %s; retrying (attempt %d)", func.__name__, exc.__cause__.sqlstate, attempt)
                time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    return wrapper
