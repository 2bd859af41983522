"""Writing, sealing and verifying the audit trail.

``record(...)`` inserts one event in the current transaction: inside a write's
transaction (the ``patient_changed`` receiver) it commits or rolls back with the write;
for a read the middleware runs it in a short transaction of its own, and if it fails the
read fails too (503 without the data). The insert takes no lock, so audited writes run
as concurrently as they would without the audit.

**Sealing** puts committed events into the hash chain: ``seal_pending()`` takes the
chain's advisory lock, gives each unsealed event, in id order, the next ``seq``, the
previous event's hash as ``prev_hash`` and ``sha256(prev_hash + "\n" + canonical)`` as
``hash``. A process seals after a commit that recorded events (``on_commit``, when the
writer holds no other lock — taking the chain's lock inside write transactions closed
lock cycles with row locks), at most once per ``SEAL_INTERVAL``, sealing every pending
event of every process at once: the chain follows the commits within about a second.
In a request the seal waits until the response has been sent (Django's
``request_finished``, which the WSGI server sends when it closes the response), so no
client waits for it: with a worker per core each worker sealed every second, and a
read that paid for a seal took about twice as long. Events whose seal was missed
(a process died right after its commit, a quiet process) are sealed by the next seal;
``verify_audit`` seals what is pending before it verifies. The
table's trigger allows exactly this one change to a row: unsealed to sealed, content
untouched.

Who/where come from the request being served (``request_context``, set by
``audit.middleware.AuditMiddleware``); outside a request (management commands) the
actor passed in is used and the interface is ``command``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

from django.core.signals import request_finished
from django.db import DatabaseError, connection, transaction
from django.dispatch import receiver

from audit.models import GENESIS, AuditEvent, Interface, Outcome
from mpi.access import AuditUnavailable

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the chain ("MPIAUDIT" as an integer).
CHAIN_LOCK = 0x4D50494155444954 & 0x7FFFFFFFFFFFFFFF


@dataclass
class RequestContext:
    request: object  # the Django HttpRequest (its user is read when an event is recorded)
    interface: str
    ip: str | None
    request_id: str
    method: str


_context: ContextVar[RequestContext | None] = ContextVar("audit_request", default=None)


@contextmanager
def request_context(context: RequestContext) -> Iterator[None]:
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> RequestContext | None:
    return _context.get()


def _who(context: RequestContext | None, actor) -> tuple[int | None, str, str]:
    user = getattr(context.request, "user", None) if context else None
    if user is None or not getattr(user, "is_authenticated", False):
        user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if user is None:
        return None, "", "anonymous" if context else "system"
    token = getattr(context.request, "auth", None) if context else None
    prefix = getattr(token, "prefix", None)
    return user.pk, user.get_username(), f"token:{prefix}" if prefix else f"user:{user.pk}"


def _route(context: RequestContext | None) -> str:
    if context is None:
        return ""
    from mpi.observability import route_template

    match = getattr(context.request, "resolver_match", None)
    if match:
        return ("/" + route_template(match.route))[:200]
    # An unmatched path is recorded as sent, but for NUL, which no text column takes:
    # "/review/%00/" must not leave its refusal out of the trail.
    return context.request.path[:200].replace("\x00", "\ufffd")


def record(
    *,
    action: str,
    patients: Iterable[UUID | str] = (),
    outcome: str = Outcome.SUCCESS,
    status_code: int | None = None,
    query: str = "",
    detail: dict | None = None,
    actor=None,
    interface: str | None = None,
) -> AuditEvent:
    """Append one event in the current transaction (the caller's, or a new one)."""
    context = current_context()
    user_id, username, client = _who(context, actor)
    event = AuditEvent(
        action=action,
        outcome=outcome,
        status_code=status_code,
        interface=interface or (context.interface if context else Interface.COMMAND),
        user_id=user_id,
        username=username,
        client=client,
        ip=context.ip if context else None,
        request_id=context.request_id if context else "",
        method=context.method if context else "",
        route=_route(context),
        query=query[:10_000],
        patients=sorted({UUID(str(p)) for p in patients}, key=str),
        detail=detail or {},
    )
    try:
        return _append(event)
    except DatabaseError as exc:
        raise AuditUnavailable(f"The audit trail could not be written: {type(exc).__name__}") from exc


_INSERT_FIELDS = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
_INSERT = (
    f"INSERT INTO {AuditEvent._meta.db_table} ({', '.join(f.column for f in _INSERT_FIELDS)})"
    f" VALUES ({', '.join(['%s'] * len(_INSERT_FIELDS))}) RETURNING {AuditEvent._meta.pk.column}"
)


def _insert(event: AuditEvent) -> None:
    """``event.save(force_insert=True)``, written out once per process: every audited
    request inserts one event, and the ORM's compilation of that INSERT cost more CPU
    than the rest of the audit (no signal handlers listen to AuditEvent saves)."""
    values = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in _INSERT_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, values)
        event.pk = cursor.fetchone()[0]
    event._state.adding, event._state.db = False, connection.alias


def _append(event: AuditEvent) -> AuditEvent:
    # Inside a write's transaction the row commits or rolls back with it (a failed insert
    # fails the write); outside one it is a single autocommitted INSERT.
    _insert(event)
    if not any(callback is _seal_soon for _, callback, _ in connection.run_on_commit):
        transaction.on_commit(_seal_soon, robust=True)  # at once in autocommit
    return event


SEAL_BATCH = 1000
# A process seals at most this often (seconds): a busy worker seals its own and everyone's
# pending events in one go instead of paying a sealing transaction per request; the chain
# runs at most this far behind the commits (verify_audit seals whatever is pending).
SEAL_INTERVAL = 1.0
_last_seal = 0.0
# Set when a request's commit recorded events: its request_finished seals them.
_seal_after_response = False


def _seal_soon() -> None:
    global _seal_after_response
    if current_context() is not None:
        _seal_after_response = True
        return
    _seal_if_due()


def _seal_if_due() -> None:
    global _last_seal
    now = time.monotonic()
    if now - _last_seal >= SEAL_INTERVAL:
        _last_seal = now
        seal_pending()


@receiver(request_finished, dispatch_uid="audit.seal_after_response")
def seal_after_response(sender, **kwargs) -> None:
    """The seal a request's commits asked for, once its response has gone out. A failure
    is logged, never raised (the response is already sent); the next seal takes the
    events."""
    global _seal_after_response
    if not _seal_after_response:
        return
    _seal_after_response = False
    try:
        _seal_if_due()
    except Exception:
        logger.exception("Sealing the audit chain after a response failed; the next seal takes its events")


CHAIN_END = "SELECT seq, hash FROM audit_auditevent WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"


def seal_pending() -> int:
    """Chain every committed, unsealed event (in id order); return how many were sealed."""
    sealed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
            cursor.execute(CHAIN_END)
            seq, prev = cursor.fetchone() or (0, GENESIS)
            pending = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:SEAL_BATCH])
            seals = []
            for event in pending:
                seq += 1
                event.prev_hash, event.hash = prev, event.compute_hash(prev)
                seals.append([seq, event.prev_hash, event.hash, event.pk])
                prev = event.hash
            if seals:  # psycopg pipelines executemany: one round trip, not one per event
                cursor.executemany(
                    "UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s", seals
                )
        sealed += len(pending)
        if len(pending) < SEAL_BATCH:
            return sealed


# --- Verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    event_id: int
    reason: str


def verify_chain(*, batch: int = 5000) -> tuple[int, Break | None]:
    """Walk the sealed chain in seq order; return (events checked, the first break or None)."""
    checked, expected_prev, last_seq = 0, GENESIS, 0
    while True:
        rows = list(AuditEvent.objects.filter(seq__gt=last_seq).order_by("seq")[:batch])
        if not rows:
            return checked, None
        for event in rows:
            if event.seq != last_seq + 1 or event.prev_hash != expected_prev:
                return checked, Break(
                    event.pk,
                    "its prev_hash is not the previous event's hash (an event was removed, "
                    "inserted or re-hashed before it)",
                )
            if event.compute_hash(event.prev_hash) != event.hash:
                return checked, Break(event.pk, "its content does not match its hash (the event was altered)")
            expected_prev, last_seq = event.hash, event.seq
            checked += 1
