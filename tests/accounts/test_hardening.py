"""Hardening: sign-in lockout, session lifetime, per-client rates, security headers,
and a clean `check --deploy` with production settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import throttling
from accounts.models import LoginFailure, RateCounter
from accounts.services import issue_token
from mpi.security import SEEN, STARTED

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"


def sign_in(client, username: str, password: str, **headers):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, **headers)


def signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


# --- Sign-in lockout ------------------------------------------------------------------------


@pytest.fixture
def lockout(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_IP_FAILURE_LIMIT = 5
    settings.LOGIN_LOCKOUT_MINUTES = 15
    return settings


def test_failed_sign_ins_lock_the_account_even_for_the_right_password(client, clerk, lockout):
    for _ in range(3):
        assert sign_in(client, "clerk", "wrong-password-123").status_code == 200
    assert LoginFailure.objects.filter(username="clerk").count() == 3
    response = sign_in(client, "clerk", PASSWORD)
    assert "This account is locked after too many failed sign-ins" in response.content.decode()
    assert not signed_in(client)
    # A locked attempt does not extend the lock.
    assert LoginFailure.objects.filter(username="clerk").count() == 3


def test_the_lock_ages_out(client, clerk, lockout):
    for _ in range(3):
        sign_in(client, "clerk", "wrong-password-123")
    LoginFailure.objects.update(at=LoginFailure.objects.first().at.replace(year=2020))
    sign_in(client, "clerk", PASSWORD)
    assert signed_in(client)


def test_unknown_names_lock_too_so_the_lock_does_not_reveal_accounts(client, db, lockout):
    for _ in range(3):
        sign_in(client, "nobody-here", "wrong-password-123")
    response = sign_in(client, "NOBODY-here", "wrong-password-123")
    assert "locked" in response.content.decode()


def test_one_address_trying_many_names_is_blocked(client, clerk, lockout):
    for i in range(5):
        sign_in(client, f"guess{i}", "wrong-password-123")
    response = sign_in(client, "clerk", PASSWORD)
    assert "Sign-in from this address is blocked" in response.content.decode()
    assert not signed_in(client)


def test_a_forged_x_forwarded_for_does_not_escape_the_address_block(client, clerk, lockout):
    for i in range(5):
        sign_in(client, f"guess{i}", "wrong-password-123", HTTP_X_FORWARDED_FOR=f"10.9.8.{i}")
    assert set(LoginFailure.objects.values_list("ip", flat=True)) == {"127.0.0.1"}
    response = sign_in(client, "clerk", PASSWORD, HTTP_X_FORWARDED_FOR="10.1.1.1")
    assert "blocked" in response.content.decode()


def test_behind_a_configured_proxy_the_address_the_proxy_saw_counts(client, clerk, lockout):
    lockout.MPI_TRUSTED_PROXIES = 1
    # The client forges a first hop; our proxy appends what it saw (203.0.113.7).
    for i in range(5):
        sign_in(client, f"guess{i}", "wrong-123456789", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}, 203.0.113.7")
    assert set(LoginFailure.objects.values_list("ip", flat=True)) == {"203.0.113.7"}
    # Another client behind the same proxy is not blocked.
    sign_in(client, "clerk", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert signed_in(client)


# --- Session lifetime -----------------------------------------------------------------------


def _age_session(client, **seconds_ago) -> None:
    session = client.session
    now = int(time.time())
    for key, ago in seconds_ago.items():
        session[{"started": STARTED, "seen": SEEN}[key]] = now - ago
    session.save()


def test_a_session_ends_after_fifteen_idle_minutes(client, clerk):
    sign_in(client, "clerk", PASSWORD)
    assert signed_in(client)
    _age_session(client, seen=14 * 60)
    assert signed_in(client)  # and this request counts as activity
    _age_session(client, seen=15 * 60 + 5)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_session_ends_twelve_hours_after_sign_in_however_busy(client, clerk):
    sign_in(client, "clerk", PASSWORD)
    _age_session(client, started=12 * 3600 + 5, seen=10)
    assert not signed_in(client)


def test_an_expired_session_cannot_call_the_api(client, integrator):
    client.force_login(integrator)
    assert client.get("/api/v1/patients/").status_code == 200
    _age_session(client, seen=16 * 60)
    assert client.get("/api/v1/patients/").status_code in (401, 403)


# --- Per-client rates -----------------------------------------------------------------------


def in_one_window(send, n: int) -> list:
    """The responses to ``n`` requests made within one calendar minute (the rate window)."""
    while True:
        RateCounter.objects.all().delete()
        minute = int(time.time() // 60)
        responses = [send() for _ in range(n)]
        if int(time.time() // 60) == minute:
            return responses


def codes(responses) -> list[int]:
    return [r.status_code for r in responses]


def test_a_token_over_its_rate_gets_429_with_retry_after(client, integrator):
    token, plain = issue_token(user=integrator, name="lab")
    token.rate_per_minute = 3
    token.save()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plain}"}
    responses = in_one_window(lambda: client.get("/api/v1/patients/", **auth), 4)
    assert codes(responses) == [200, 200, 200, 429]
    assert 0 < int(responses[-1]["Retry-After"]) <= 60
    assert responses[-1].json()["errors"][0]["code"] == "throttled"
    # Another client is not affected.
    _, other = issue_token(user=integrator, name="ward")
    assert client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200


def test_the_default_rate_applies_per_client_and_can_be_switched_off(client, integrator, settings):
    settings.MPI_API_RATE = "2"
    client.force_login(integrator)
    assert codes(in_one_window(lambda: client.get("/api/v1/patients/"), 3)) == [200, 200, 429]
    assert RateCounter.objects.get().client == f"user:{integrator.pk}"
    settings.MPI_API_RATE = "off"
    assert codes(in_one_window(lambda: client.get("/api/v1/patients/"), 3)) == [200, 200, 200]


def test_a_token_is_found_and_its_request_counted_in_one_statement(client, integrator):
    token, plain = issue_token(user=integrator, name="lab")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plain}"}
    with CaptureQueriesContext(connection) as queries:
        responses = in_one_window(lambda: client.get(f"/api/v1/patients/{uuid4()}/", **auth), 3)
    assert codes(responses) == [404, 404, 404]
    counted = [q["sql"] for q in queries if "accounts_ratecounter" in q["sql"] and "INSERT" in q["sql"]]
    assert len(counted) == 3 and all("accounts_apitoken" in sql for sql in counted)
    assert RateCounter.objects.get().client == f"token:{token.pk}"
    assert RateCounter.objects.get().count == 3


def test_only_the_tokens_holder_spends_its_rate(client, integrator):
    """The prefix is not secret (it is in logs and the audit trail): a wrong secret with
    the right prefix is a 401 and counts nothing against the real token."""
    token, _ = issue_token(user=integrator, name="lab")
    forged = f"mpi_{token.prefix}_{'x' * 43}"
    responses = in_one_window(
        lambda: client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {forged}"), 3
    )
    assert codes(responses) == [401, 401, 401]
    assert not RateCounter.objects.exists()


def test_a_tokens_own_rate_applies_with_the_default_switched_off(client, integrator, settings):
    settings.MPI_API_RATE = "off"
    token, plain = issue_token(user=integrator, name="lab")
    _, unlimited = issue_token(user=integrator, name="ward")
    assert (
        codes(
            in_one_window(
                lambda: client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {unlimited}"), 3
            )
        )
        == [200] * 3
    )
    assert not RateCounter.objects.exists()  # nothing to count against
    token.rate_per_minute = 2
    token.save()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plain}"}
    assert codes(in_one_window(lambda: client.get("/api/v1/patients/", **auth), 3)) == [200, 200, 429]


def test_a_request_counted_in_the_minute_before_is_counted_again_in_the_new_one(
    client, integrator, monkeypatch
):
    """The token's statement counts in the minute it ran; a throttle check that falls in
    the next minute counts the request there (never lets it through uncounted)."""
    _, plain = issue_token(user=integrator, name="lab")
    minute = int(time.time() // 60)
    ticks = iter([minute, minute + 1])
    monkeypatch.setattr(throttling, "current_window", lambda now=None: next(ticks))
    RateCounter.objects.all().delete()
    assert client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200
    assert sorted(RateCounter.objects.values_list("window", "count")) == [(minute, 1), (minute + 1, 1)]


# --- Headers ---------------------------------------------------------------------------------


def test_pages_and_api_responses_are_never_cached_and_pages_carry_a_csp(client, clerk, integrator):
    client.force_login(clerk)
    page = client.get("/search/")
    assert page["Cache-Control"] == "no-store"
    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    client.force_login(integrator)
    api = client.get("/api/v1/patients/")
    assert api["Cache-Control"] == "no-store"
    admin = client.get("/admin/login/")
    assert "no-store" in admin["Cache-Control"]


# --- check --deploy -------------------------------------------------------------------------


def test_check_deploy_is_clean_with_production_settings():
    env = {
        **{k: v for k, v in os.environ.items() if k != "MPI_ALLOW_DEV_SECRET_KEY"},
        "DEBUG": "false",
        "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-" + "y" * 20,
        "DATABASE_URL": "postgres://mpi@127.0.0.1:1/unused",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_COOKIES": "true",
        "ALLOWED_HOSTS": "mpi.example.org",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The one opt-in warning left is HSTS preload (security.W021), a decision for the operator.
    issues = [line for line in done.stderr.splitlines() if "security." in line and "W021" not in line]
    assert issues == [], done.stderr
