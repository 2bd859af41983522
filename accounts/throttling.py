"""Per-client request rates for the REST and FHIR APIs: over the limit → 429.

A client is an API token (its own ``rate_per_minute``, else the default), else a signed-in
user, else the caller's address. The default is ``MPI_API_RATE`` requests per minute
(3000; ``off`` disables throttling). Counts live in PostgreSQL (``RateCounter``, an
UNLOGGED table, one upsert per request), so the limit holds across every gunicorn worker
and app host — a per-process cache would multiply it by the number of workers. A
token's request is counted by the statement that finds the token
(``accounts.authentication``, with ``COUNT_TOKEN_REQUEST``): one round trip fewer on
every token request. Windows are calendar minutes; ``Retry-After`` says when the
current one ends.
"""

from __future__ import annotations

import random
import time

from django.conf import settings
from django.db import connection
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiToken
from mpi.security import client_ip

# Old windows are deleted now and then by the requests themselves (1 in this many).
PURGE_EVERY = 500


def default_rate() -> int | None:
    value = str(settings.MPI_API_RATE).strip().lower()
    return None if value in ("", "0", "off", "none") else int(value)


def _client(request) -> tuple[str, int | None]:
    token = request.auth if isinstance(request.auth, ApiToken) else None
    if token is not None:
        return f"token:{token.pk}", token.rate_per_minute or default_rate()
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}", default_rate()
    return f"ip:{client_ip(request._request)}", default_rate()


_UPSERT = (
    'INSERT INTO accounts_ratecounter (client, "window", count) {rows}'
    ' ON CONFLICT (client, "window") DO UPDATE SET count = accounts_ratecounter.count + 1'
    " RETURNING count"
)
_COUNT = _UPSERT.format(rows="VALUES (%s, %s, 1)")
# A token's request counted in the statement that finds the token: a CTE over the CTE
# ``found`` (its columns ``{token}``: the token's id, ``{rate}``: its own rate), with
# the parameters ``window`` and ``default`` (is a default rate set?). The client key
# and the condition are those of ``_client``.
COUNT_TOKEN_REQUEST = _UPSERT.format(
    rows="SELECT 'token:' || {token}, %(window)s, 1 FROM found WHERE %(default)s OR coalesce({rate}, 0) > 0"
)


def current_window(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 60)


def count_request(client: str, window: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_COUNT, [client, window])
        count = cursor.fetchone()[0]
    _purge_now_and_then(window)
    return count


def _purge_now_and_then(window: int) -> None:
    if random.randrange(PURGE_EVERY) == 0:
        with connection.cursor() as cursor:
            cursor.execute('DELETE FROM accounts_ratecounter WHERE "window" < %s', [window - 1])


class ClientRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        client, rate = _client(request)
        if rate is None:
            return True
        now = time.time()
        self._retry_after = 60 - now % 60
        window = current_window(now)
        # Counted already by the statement that found the token, if in this window.
        counted = getattr(request.auth, "counted", None)
        if counted is not None and counted[0] == window:
            _purge_now_and_then(window)
            return counted[1] <= rate
        return count_request(client, window) <= rate

    def wait(self) -> float | None:
        return getattr(self, "_retry_after", None)
