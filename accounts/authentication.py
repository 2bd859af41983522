"""DRF authentication with the tokens of ``ApiToken``.

Header: ``Authorization: Bearer <token>`` (``Token <token>`` is accepted too). A
request without that header is left to the next authentication class (the browser
session); a bad, expired or revoked token is a 401 with the reason.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.models import ApiToken
from accounts.tokens import matches, token_prefix

KEYWORDS = ("bearer", "token")
# last_used_at is for people ("is this token still used?"): minute precision is
# plenty, and it spares a write on every request.
LAST_USED_PRECISION = timedelta(minutes=1)


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
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first() if prefix else None
        if token is None or not matches(plain, token.key_hash):
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
