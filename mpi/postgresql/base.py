"""Django's PostgreSQL backend with a health check that costs no round trip, and integer
parameters that never wrap.

With ``CONN_HEALTH_CHECKS`` (on: a persistent connection the server has closed, after a
restart, a failover or ``pg_terminate_backend``, is replaced before a request uses it,
instead of failing that request), Django sends ``SELECT 1`` before each request's first
query: a round trip of 86-108 µs, 46-64 µs of the worker's CPU and a query's work for
the server, on every request (a full read costs ~2.5 ms of the worker's CPU in all);
the check below takes ~3 µs.

A connection the server closed has something to read: PostgreSQL sends a FATAL message
("terminating connection due to administrator command", ...) and then end-of-file. An
idle, healthy connection has nothing to read. So: poll the socket without waiting;
nothing to read means usable, and only otherwise is ``SELECT 1`` sent, which then fails
on a dead connection (and reads whatever else the server sent on a live one). A peer
that vanished without closing (a cable cut) is not detected either way until a query
times out, as with ``SELECT 1``. Outside an idle or open transaction (an aborted one,
where ``SELECT 1`` fails and callers such as Django's test teardown rely on hearing
"not usable"), the stock check runs.

**Integers.** With psycopg 3 Django hands an integer field's value over as
``psycopg.types.numeric.Int2`` / ``Int4`` / ``Int8`` (the column's type). With
server-side binding (``mpi/settings.py``) psycopg sends those in binary, and the C
dumper packs the value into 2, 4 or 8 bytes without a range check: 65537 for a
``smallint`` column arrived as 1 and 99999 as -31073, silently (with client-side
binding PostgreSQL says "smallint out of range"). ``DatabaseOperations`` refuses such a
value with the ``DataError`` PostgreSQL would have raised, before anything is sent; the
APIs answer a ``DataError`` with a 400.
"""

from __future__ import annotations

import select

from django.db import DataError
from django.db.backends.postgresql import base, operations
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import Int2, Int4, Int8

_QUERYABLE = (TransactionStatus.IDLE, TransactionStatus.INTRANS)


# What each of psycopg's integer wrappers can carry (the PostgreSQL type's range).
_RANGES = {
    Int2: ("smallint", -(2**15), 2**15 - 1),
    Int4: ("integer", -(2**31), 2**31 - 1),
    Int8: ("bigint", -(2**63), 2**63 - 1),
}


class DatabaseOperations(operations.DatabaseOperations):
    def adapt_integerfield_value(self, value, internal_type):
        adapted = super().adapt_integerfield_value(value, internal_type)
        limits = _RANGES.get(type(adapted))
        if limits is not None and not limits[1] <= adapted <= limits[2]:
            raise DataError(f"{limits[0]} out of range")
        return adapted


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status not in _QUERYABLE:
            return super().is_usable()  # an aborted transaction cannot run SELECT 1: not usable
        poller = select.poll()  # not select(): no limit on the descriptor's number
        try:
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            waiting = poller.poll(0)
        except (OSError, ValueError):
            return False
        return not waiting or super().is_usable()
