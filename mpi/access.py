"""Views declare which patients' data a request read; the audit trail records it.

Every interface (REST, FHIR, pages, admin) calls ``note_access(request, action,
patients, query=...)`` when it returns patient data; ``audit.middleware`` records the
notes after the response and refuses the response (503) if it cannot. This module holds
only the note, so any app (``patients`` included) can declare accesses without
depending on the audit app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


class AuditUnavailable(Exception):
    """The audit record of an access could not be written: the access must not happen (503)."""


@dataclass
class Access:
    action: str  # audit.models.Action: read, vread, search, match, history, resolve, export...
    patients: list[str] = field(default_factory=list)  # public ids
    query: str = ""  # a search's parameters as sent
    detail: dict = field(default_factory=dict)


def note_access(request, action: str, patients=(), *, query: str = "", detail: dict | None = None) -> None:
    """Declare a read of patient data (a DRF or a Django request)."""
    request = getattr(request, "_request", request)
    if not hasattr(request, "audit_accesses"):
        request.audit_accesses = []
    request.audit_accesses.append(Access(action, [str(p) for p in patients], query, detail or {}))


def noted_accesses(request) -> list[Access]:
    return getattr(getattr(request, "_request", request), "audit_accesses", [])


def request_query(request) -> str:
    """The query as sent, for the audit: the URL's query string, else the body (JSON, a form)."""
    query = request.META.get("QUERY_STRING", "")
    data = getattr(request, "data", None)
    if query or not data:
        return query
    data = data.dict() if hasattr(data, "dict") else data
    return json.dumps(data, ensure_ascii=False, default=str)[:10_000]
