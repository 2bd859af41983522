"""Django's PostgreSQL backend with a health check that costs no round trip.

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
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

_QUERYABLE = (TransactionStatus.IDLE, TransactionStatus.INTRANS)


class DatabaseWrapper(base.DatabaseWrapper):
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
