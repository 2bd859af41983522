"""Token lifecycle: issue and revoke. The admin and any future command call these."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import new_token


@transaction.atomic
def issue_token(
    *, user, name: str, expires_at: datetime | None = None, rate_per_minute: int | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; return it and the plain token, which is not kept."""
    plain, prefix, key_hash = new_token()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        expires_at=expires_at,
        rate_per_minute=rate_per_minute,
    )
    return token, plain


def revoke_tokens(*, tokens) -> int:
    """Revoke the given tokens (a queryset); already revoked ones keep their date."""
    # ApiToken has no history table, so a bulk update records everything there is.
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
