"""Request logs and health checks for production serving.

One JSON line per request on the ``mpi.requests`` logger::

    {"ts": "...", "request_id": "...", "method": "GET", "route": "api/v1/patients/{id}/",
     "status": 200, "duration_ms": 4.2, "client": "token:mpi_AbC1"}

The line never holds patient data: the route is the URL *pattern* (``{id}`` instead of
the patient's id), there is no query string (a search's query is a name), no body and no
client IP (the access audit trail, not the operations log, records who looked at whom).
The request id comes from an ``X-Request-ID`` header set by the proxy when it is a sane
token, else a new one; it is echoed in the response and available as
``request.request_id`` for other logs.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

logger = logging.getLogger("mpi.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^()]*\)")
_SLASH_OR_END = re.compile(r"\(\?:/\|\$\)")  # "fhir(?:/|$)": the FHIR base with or without a slash


def route_template(route: str) -> str:
    """``^patients/(?P<id>[0-9a-f-]+)/$`` -> ``patients/{id}/``: the pattern, not the values."""
    route = _SLASH_OR_END.sub("/", route)
    return _NAMED_GROUP.sub(r"{\1}", route).replace("^", "").replace("$", "").replace("\\.", ".")


def _client(request) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    token = getattr(request, "auth", None)
    prefix = getattr(token, "prefix", None)
    return f"token:{prefix}" if prefix else f"user:{user.pk}"


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        match = getattr(request, "resolver_match", None)
        line = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": request.request_id,
            "method": request.method,
            "route": "/" + route_template(match.route) if match else None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "client": _client(request),
        }
        logger.info(json.dumps(line, separators=(",", ":")))
        return response


# --- Health checks ----------------------------------------------------------------------

_migrations_applied = False  # once true in a process it stays true until the next deploy


def _unapplied_migrations() -> int:
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def healthz(request) -> JsonResponse:
    """The process is alive and serving (no database call: a load balancer's liveness probe)."""
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    """Ready for traffic: the database answers and every migration is applied."""
    global _migrations_applied
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not _migrations_applied:
            pending = _unapplied_migrations()
            if pending:
                return JsonResponse(
                    {"status": "unavailable", "reason": f"{pending} migration(s) not applied"}, status=503
                )
            _migrations_applied = True
    except DatabaseError as exc:
        logging.getLogger(__name__).warning("readyz: database unreachable: %s", type(exc).__name__)
        return JsonResponse({"status": "unavailable", "reason": "database unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
