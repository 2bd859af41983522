"""DRF authentication with the tokens of ``ApiToken``.

Header: ``Authorization: Bearer <token>`` (``Token <token>`` is accepted too). A
request without that header is left to the next authentication class (the browser
session); a bad, expired or revoked token is a 401 with the reason.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts import throttling
from accounts.models import ApiToken
from accounts.tokens import hash_token, matches, token_prefix

KEYWORDS = ("bearer", "token")
# last_used_at is for people ("is this token still used?"): minute precision is
# plenty, and it spares a write on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


def _token_statement() -> str:
    """The token, its user and the user's permissions ("app_label.codename", held
    directly or through a group) in one statement, by prefix and hash; and the request
    counted for the rate limit (``accounts.throttling``) in the same statement.

    Written out once per process rather than built by the ORM on every request (the
    ORM's compilation cost more than PostgreSQL's work), and with the permissions that
    ``ModelBackend`` would otherwise ask for in two more queries per request (it caches
    them on the user object, which is new each time). Only a request that holds the
    token's secret is counted (the hash is part of the condition): knowing a token's
    prefix, which is not secret, does not spend its owner's rate.
    """
    user = get_user_model()
    direct = user._meta.get_field("user_permissions").remote_field.through._meta.db_table
    member = user._meta.get_field("groups").remote_field.through._meta.db_table
    granted = Group._meta.get_field("permissions").remote_field.through._meta.db_table
    columns = [f"t.{f.column}" for f in ApiToken._meta.concrete_fields]
    columns += [f"u.{f.column}" for f in user._meta.concrete_fields]
    permissions = (
        "ARRAY(SELECT ct.app_label || '.' || p.codename"
        f" FROM {Permission._meta.db_table} p JOIN django_content_type ct ON ct.id = p.content_type_id"
        f" WHERE p.id IN (SELECT d.permission_id FROM {direct} d WHERE d.user_id = u.id"
        f" UNION SELECT g.permission_id FROM {granted} g JOIN {member} m ON m.group_id = g.group_id"
        " WHERE m.user_id = u.id))"
    )
    return (
        f"WITH found AS (SELECT {', '.join(columns)}, {permissions},"
        " t.id AS counted_token, t.rate_per_minute AS counted_rate"
        f" FROM {ApiToken._meta.db_table} t JOIN {user._meta.db_table} u ON u.id = t.user_id"
        " WHERE t.prefix = %(prefix)s AND t.key_hash = %(hash)s),"
        f" counted AS ({throttling.COUNT_TOKEN_REQUEST.format(token='counted_token', rate='counted_rate')})"
        " SELECT found.*, (SELECT count FROM counted) FROM found"
    )


_statement: str | None = None


def find_token(plain: str) -> ApiToken | None:
    """The token ``plain`` names (by its prefix and hash), its ``user`` loaded with
    ``_perm_cache`` filled in, and ``counted`` set for the rate limit; None when there
    is no such token."""
    global _statement
    prefix = token_prefix(plain)
    if prefix is None:
        return None
    if _statement is None:
        _statement = _token_statement()
    window = throttling.current_window()
    with connection.cursor() as cursor:
        cursor.execute(
            _statement,
            {
                "prefix": prefix,
                "hash": hash_token(plain),
                "window": window,
                "default": throttling.default_rate() is not None,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    user_model = get_user_model()
    split = len(ApiToken._meta.concrete_fields)
    end = split + len(user_model._meta.concrete_fields)
    token = ApiToken.from_db(connection.alias, None, row[:split])
    if not matches(plain, token.key_hash):  # constant time, whatever the database compared
        return None
    user = user_model.from_db(connection.alias, None, row[split:end])
    # Where ModelBackend.get_all_permissions keeps them (a superuser has them all anyway).
    user._perm_cache = set(row[end])
    ApiToken._meta.get_field("user").set_cached_value(token, user)
    count = row[-1]
    token.counted = None if count is None else (window, count)
    return token


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
        token = find_token(plain)
        if token is None:
            raise AuthenticationFailed("Invalid token.")
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
