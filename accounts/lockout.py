"""Sign-in throttling: too many failed sign-ins lock the account name and the address.

Every failed ``authenticate()`` (the admin login, which the steward pages share) is a
``LoginFailure`` row. An account name with ``LOGIN_FAILURE_LIMIT`` failures (5) within
``LOGIN_LOCKOUT_MINUTES`` (15) is locked for the rest of that window — the right
password is refused too, so guessing cannot go on slowly in the background — and so is
an address with ``LOGIN_IP_FAILURE_LIMIT`` (20) failures, whatever names it tries.
Addresses come from ``mpi.security.client_ip`` (proxies only as configured), so a forged
``X-Forwarded-For`` changes nothing. The rows stay as a record; the lock simply ages out.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import LoginFailure
from mpi.security import client_ip


def _window_start():
    return timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)


def _name(username) -> str:
    return str(username or "").strip().casefold()[:150]


def lock_reason(username, ip: str | None) -> str | None:
    """Why sign-in is refused now for this name from this address; None when it is not."""
    since = _window_start()
    recent = LoginFailure.objects.filter(at__gte=since)
    if recent.filter(username=_name(username)).count() >= settings.LOGIN_FAILURE_LIMIT:
        return "This account is locked after too many failed sign-ins"
    if ip and recent.filter(ip=ip).count() >= settings.LOGIN_IP_FAILURE_LIMIT:
        return "Sign-in from this address is blocked after too many failed attempts"
    return None


class LockoutModelBackend(ModelBackend):
    """ModelBackend that refuses a locked name or address before checking the password."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get("username")
        if lock_reason(username, client_ip(request) if request is not None else None):
            raise PermissionDenied  # authenticate() stops here and reports a failure
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="accounts.lockout.record_failure")
def record_failure(sender, credentials, request=None, **kwargs) -> None:
    LoginFailure.objects.create(
        username=_name(credentials.get("username")), ip=client_ip(request) if request is not None else None
    )


class LockoutAuthenticationForm(AdminAuthenticationForm):
    """The admin sign-in form, saying plainly when the lock (not the password) refused."""

    def clean(self):
        reason = lock_reason(self.data.get("username"), client_ip(self.request) if self.request else None)
        if reason:
            minutes = settings.LOGIN_LOCKOUT_MINUTES
            raise forms.ValidationError(f"{reason}. Try again in {minutes} minutes.", code="locked")
        return super().clean()
