"""The access audit trail: one append-only, hash-chained row per access to patient data.

What a row holds follows IHE's Basic Audit Log Patterns (BALP): when (UTC), who (the
user, and the API client), from where (the address as seen through the configured
proxies), which request, what was done (the action), how it ended (outcome and HTTP
status), which patients were involved (their public ids) and, for a search, the query
as sent.

Tamper evidence: each event is sealed right after it commits with ``seq`` (its place
in the chain), ``prev_hash`` (the previous event's hash) and ``hash = sha256(prev_hash +
"\n" + canonical(event))``, so changing, removing or inserting an event anywhere breaks
the chain from there on; ``manage.py verify_audit`` finds the first broken link. A
trigger (migration 0001) refuses DELETE and every UPDATE but the seal itself, so the
application cannot rewrite the trail even by mistake; only a database owner could, and
the chain shows it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

GENESIS = "0" * 64


class Action(models.TextChoices):
    READ = "read"
    VREAD = "vread"
    SEARCH = "search"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"
    PURGE = "purge"
    MERGE = "merge"
    UNMERGE = "unmerge"
    LINK = "link"
    DECIDE = "decide"
    MATCH = "match"
    HISTORY = "history"
    EXPORT = "export"
    IMPORT = "import"
    RESOLVE = "resolve"


class Outcome(models.TextChoices):
    SUCCESS = "success"
    DENIED = "denied"  # 401/403: refused before any data was touched
    FAILED = "failed"  # 4xx/5xx after the request was allowed


class Interface(models.TextChoices):
    REST = "rest"
    FHIR = "fhir"
    ADMIN = "admin"
    PAGES = "pages"
    COMMAND = "command"


class AuditEvent(models.Model):
    recorded_at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.SUCCESS)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    interface = models.CharField(max_length=8, choices=Interface.choices)
    # Who. Plain values, not a foreign key: a user deleted later must not change (or
    # block) the record, and the table accepts no updates anyway.
    user_id = models.IntegerField(null=True, blank=True, db_index=True)
    username = models.CharField(max_length=150, blank=True)
    client = models.CharField(max_length=64, blank=True, help_text="token:<prefix> or user:<id>")
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=8, blank=True)
    route = models.CharField(max_length=200, blank=True)
    query = models.TextField(blank=True, help_text="A search's parameters as sent.")
    patients = ArrayField(models.UUIDField(), default=list, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # Set when the event is sealed into the chain (audit.services.seal_pending).
    seq = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            GinIndex(fields=["patients"], name="auditevent_patients_gin"),
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="auditevent_unsealed"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.outcome} by {self.username or self.client or '-'}"

    def canonical(self) -> str:
        """The row's content as hashed: fixed key order, UTC timestamp, sorted patients."""
        return json.dumps(
            {
                "recorded_at": self.recorded_at.astimezone(UTC).isoformat(timespec="microseconds"),
                "action": self.action,
                "outcome": self.outcome,
                "status_code": self.status_code,
                "interface": self.interface,
                "user_id": self.user_id,
                "username": self.username,
                "client": self.client,
                "ip": self.ip,
                "request_id": self.request_id,
                "method": self.method,
                "route": self.route,
                "query": self.query,
                "patients": sorted(str(p) for p in self.patients),
                "detail": self.detail,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )

    def compute_hash(self, prev_hash: str) -> str:
        return hashlib.sha256(f"{prev_hash}\n{self.canonical()}".encode()).hexdigest()
