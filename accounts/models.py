"""API access: tokens for system clients, and the stored responses behind
``Idempotency-Key``."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiToken(models.Model):
    """A bearer token of one user. Only a hash of the secret is stored.

    Create them with ``accounts.services.issue_token`` (the admin does): the plain
    token exists only in that function's return value.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses it, e.g. 'Lab system (prod)'.")
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute this client may make; empty: the default (MPI_API_RATE).",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def refusal(self, now=None) -> str | None:
        """Why this token cannot authenticate now, or None when it can."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "The token was revoked."
        if self.expires_at is not None and self.expires_at <= now:
            return "The token has expired."
        if not self.user.is_active:
            return "The token's user is inactive."
        return None

    @property
    def status(self) -> str:
        refusal = self.refusal()
        if refusal is None:
            return "active"
        return "revoked" if self.revoked_at else "expired" if "expired" in refusal else "user inactive"


IDEMPOTENCY_TTL = timedelta(hours=24)


class IdempotencyRecord(models.Model):
    """The first successful response to a POST sent with an ``Idempotency-Key``.

    Per user, key, method and path. The row is inserted before the request runs, in
    the request's transaction: a concurrent retry blocks on the unique index until the
    first attempt commits (then replays it) or rolls back (then runs itself).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=1000)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key", "method", "path"], name="uniq_idempotency_key"),
            models.CheckConstraint(
                condition=Q(status_code__isnull=True) | Q(status_code__gte=100, status_code__lte=599),
                name="idempotency_status_code_http",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"

    @property
    def expired(self) -> bool:
        return self.created_at <= timezone.now() - IDEMPOTENCY_TTL


class LoginFailure(models.Model):
    """One failed sign-in, for the lockout (``accounts.lockout``): who was tried, from where."""

    username = models.CharField(max_length=150)  # as typed, case-folded
    ip = models.GenericIPAddressField(null=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["username", "at"], name="loginfailure_user_at"),
            models.Index(fields=["ip", "at"], name="loginfailure_ip_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%Y-%m-%d %H:%M:%S}"


class RateCounter(models.Model):
    """Requests of one client in one minute (``accounts.throttling``).

    Shared by every worker and host, unlike a per-process cache. The table is UNLOGGED
    (migration 0002): counters need no crash safety and no WAL.
    """

    client = models.CharField(max_length=64)
    window = models.BigIntegerField()  # minutes since the epoch
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "window"], name="uniq_rate_window")]

    def __str__(self) -> str:
        return f"{self.client}: {self.count} in minute {self.window}"
