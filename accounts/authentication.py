"""DRF authentication with the tokens of ``ApiToken``.

Header: ``Authorization: Bearer <token>`` (``Token <token>`` is accepted too). A
request without that header is left to the next authentication class (the browser
session); a bad, expired or revoked token is a 401 with the reason.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import models
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiToken
from accounts.tokens import matches, token_prefix

KEYWORDS = ("bearer", "token")
# last_used_at is for people ("is this token still used?"): minute precision is
# plenty, and it spares a write on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


class _Permissions(models.Func):
    """The token user's permissions ("app_label.codename", held directly or through a
    group) in the token's own query. ``ModelBackend`` would ask for them in two more
    queries on every request: it caches them on the user object, which is new each time."""

    output_field = models.JSONField()

    def __init__(self) -> None:
        super().__init__(models.F("user_id"))

    def as_sql(self, compiler, connection, **extra):
        user = get_user_model()
        direct = user._meta.get_field("user_permissions").remote_field.through._meta.db_table
        member = user._meta.get_field("groups").remote_field.through._meta.db_table
        granted = Group._meta.get_field("permissions").remote_field.through._meta.db_table
        self.template = (
            "(SELECT coalesce(jsonb_agg(ct.app_label || '.' || p.codename), '[]'::jsonb)"
            f" FROM {Permission._meta.db_table} p JOIN django_content_type ct ON ct.id = p.content_type_id"
            f" WHERE p.id IN (SELECT d.permission_id FROM {direct} d WHERE d.user_id = %(expressions)s"
            f" UNION SELECT g.permission_id FROM {granted} g JOIN {member} m ON m.group_id = g.group_id"
            " WHERE m.user_id = %(expressions)s))"
        )
        return super().as_sql(compiler, connection, **extra)


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower().decode("latin-1") not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            plain = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        prefix = token_prefix(plain)
        token = (
            ApiToken.objects.select_related("user").annotate(user_permissions=_Permissions()).filter(prefix=prefix).first()
            if prefix
            else None
        )
        if token is None or not matches(plain, token.key_hash):
            raise AuthenticationFailed("Invalid token.")
        # Where ModelBackend.get_all_permissions keeps them (a superuser has them all anyway).
        token.user._perm_cache = set(token.user_permissions)
        now = timezone.now()
        refusal = token.refusal(now)
        if refusal:
            raise AuthenticationFailed(refusal)
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to anonymous requests.
        return 'Bearer realm="api"'
