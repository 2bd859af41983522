"""``retry_on_conflict``: an aborted write runs again, with a widening random back-off.

The collisions themselves are produced by real concurrent writers in
tests/patients/test_concurrency.py and tests/faults; this file pins the policy."""

import psycopg
import pytest
from django.db import OperationalError

from patients import retry


def _collision(sqlstate: str) -> OperationalError:
    cause = psycopg.errors.lookup(sqlstate)("collided")
    error = OperationalError("collided")
    error.__cause__ = cause
    return error


@pytest.fixture
def waits(monkeypatch):
    slept = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    return slept


@pytest.mark.parametrize("sqlstate", sorted(retry.RETRYABLE))
def test_a_collision_is_retried_until_the_write_goes_through(sqlstate, waits):
    calls = []

    @retry.retry_on_conflict
    def write():
        calls.append(1)
        if len(calls) < retry.ATTEMPTS:
            raise _collision(sqlstate)
        return "written"

    assert write() == "written"
    assert len(calls) == retry.ATTEMPTS and len(waits) == retry.ATTEMPTS - 1
    assert all(0 <= w <= retry.BACKOFF_CAP for w in waits)


def test_after_the_last_attempt_the_collision_goes_to_the_caller(waits):
    @retry.retry_on_conflict
    def write():
        raise _collision("40P01")

    with pytest.raises(OperationalError):
        write()
    assert len(waits) == retry.ATTEMPTS - 1


def test_other_errors_are_not_retried(waits):
    @retry.retry_on_conflict
    def write():
        raise _collision("23505")  # unique_violation: a real conflict, not a collision

    with pytest.raises(OperationalError):
        write()
    assert waits == []


def test_the_back_off_widens_and_is_capped():
    ceilings = [min(retry.BACKOFF_CAP, retry.BACKOFF_BASE * 2**k) for k in range(1, retry.ATTEMPTS)]
    assert ceilings == sorted(ceilings) and ceilings[-1] == retry.BACKOFF_CAP
    for attempt, ceiling in enumerate(ceilings, start=1):
        assert all(0 <= retry.backoff(attempt) <= ceiling for _ in range(50))
