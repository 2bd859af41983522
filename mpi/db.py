"""Database routing: search and match reads may go to a read replica.

With ``DATABASE_REPLICA_URL`` set, settings add a ``replica`` alias and this router.
Only code that asks for it reads from the replica: the clerk search, the REST and FHIR
search and match endpoints wrap their work in ``replica_reads()`` (or the
``reads_from_replica`` decorator). Everything else — writes, reads before a write, the
synchronous match inside a registration, the steward pages — stays on the primary, so a
client always reads its own writes. A read inside an open transaction on the primary
also stays there (it may be part of a write).

A replica lags its primary by a little: a patient registered a moment ago may be
missing from a search answered by the replica for that moment. That is the trade the
setting makes; leave it unset to read everything from the primary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
_replica_wanted: ContextVar[bool] = ContextVar("replica_wanted", default=False)


@contextmanager
def replica_reads() -> Iterator[None]:
    token = _replica_wanted.set(True)
    try:
        yield
    finally:
        _replica_wanted.reset(token)


def reads_from_replica(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        with replica_reads():
            return view(*args, **kwargs)

    return wrapper


def read_alias() -> str:
    """Where a read issued now goes (for raw SQL: ``connections[read_alias()]``)."""
    if (
        _replica_wanted.get()
        and REPLICA in settings.DATABASES
        and not connections[DEFAULT_DB_ALIAS].in_atomic_block
    ):
        return REPLICA
    return DEFAULT_DB_ALIAS


class ReplicaRouter:
    def db_for_read(self, model, **hints) -> str:
        return read_alias()

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # one database, two connections to it

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS  # a physical replica follows the primary's schema
