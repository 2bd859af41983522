"""Hardening that applies to every response and every browser session.

- ``client_ip``: the caller's address as seen through the configured proxies only. With
  ``MPI_TRUSTED_PROXIES=0`` (the default) it is the socket's peer and any
  ``X-Forwarded-For`` is ignored; with ``n`` proxies in front, it is the address the
  outermost of them saw (the n-th entry from the right), so a client cannot forge its
  way around a lockout by sending its own ``X-Forwarded-For``.
- ``SecurityHeadersMiddleware``: a Content-Security-Policy on every page (scripts only
  from our origin: no inline script can run) and ``Cache-Control: no-store`` on every
  response that is not a static file (patient data must not sit in browser or proxy
  caches). Whitenoise answers static files before this middleware runs.
- ``SessionTimeoutMiddleware``: a browser session ends after 15 minutes without a
  request (``SESSION_IDLE_TIMEOUT``) and 12 hours after sign-in
  (``SESSION_ABSOLUTE_TIMEOUT``), whatever it does in between.
"""

from __future__ import annotations

import ipaddress
import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # htmx and the admin set style attributes; styles cannot run code.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    peer = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.MPI_TRUSTED_PROXIES
    if proxies <= 0:
        return peer
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if len(hops) < proxies:
        return peer  # fewer hops than proxies: the header did not come through them all
    return _valid_ip(hops[-proxies]) or peer


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if "no-store" not in response.get("Cache-Control", ""):
            response["Cache-Control"] = "no-store"
        return response


# --- Session lifetime ------------------------------------------------------------------------

STARTED, SEEN = "mpi_auth_started", "mpi_auth_seen"
# Writing "last seen" on every request would save the session every time; once a
# minute is enough for a 15-minute idle limit.
SEEN_PRECISION = 60


@receiver(user_logged_in, dispatch_uid="mpi.security.session_started")
def _session_started(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[STARTED] = request.session[SEEN] = now


class SessionTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.session.get("_auth_user_id"):
            now = int(time.time())
            started = request.session.setdefault(STARTED, now)
            seen = request.session.get(SEEN, now)
            idle, age = now - seen, now - started
            if idle > settings.SESSION_IDLE_TIMEOUT or age > settings.SESSION_ABSOLUTE_TIMEOUT:
                logout(request)  # flushes the session; the request goes on as anonymous
            elif now - seen >= SEEN_PRECISION or SEEN not in request.session:
                request.session[SEEN] = now
        return self.get_response(request)
