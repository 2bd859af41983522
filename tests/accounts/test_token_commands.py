"""issue_token, revoke_token and list_tokens: tokens provisioned without the admin."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db

URL = "/api/v1/patients/"


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def status_with(plain: str) -> int:
    return APIClient().get(URL, HTTP_AUTHORIZATION=f"Bearer {plain}").status_code


def test_issue_token_prints_a_working_token_once_and_stores_only_its_hash(integrator):
    out = run("issue_token", integrator.username, "--name", "Lab system (prod)")
    token = ApiToken.objects.get()
    plain = next(line for line in out.splitlines() if line.startswith("mpi_"))
    assert status_with(plain) == 200
    assert token.name == "Lab system (prod)" and token.user == integrator
    assert token.expires_at is None and token.rate_per_minute is None
    assert token.prefix in out and "never expires" in out
    assert plain not in str(list(ApiToken.objects.values().get().values()))


def test_issue_token_plain_prints_the_token_alone_with_expiry_and_rate(integrator):
    days, rate = ("--expires-in-days", "30"), ("--rate", "120")
    out = run("issue_token", integrator.username, "--name", "ci", *days, *rate, "--plain")
    plain = out.strip()
    assert out.count("\n") == 1 and plain.startswith("mpi_")
    token = ApiToken.objects.get()
    assert token.rate_per_minute == 120
    assert 29.9 < (token.expires_at - token.created_at).total_seconds() / 86400 <= 30
    assert status_with(plain) == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody", "--name", "x"], "No user named 'nobody'"),
        (["{user}", "--name", "   "], "--name must be 1 to 100 characters"),
        (["{user}", "--name", "x" * 101], "--name must be 1 to 100 characters"),
    ],
)
def test_issue_token_refuses_bad_input_and_creates_nothing(integrator, args, message):
    with pytest.raises(CommandError, match=message):
        run("issue_token", *[a.format(user=integrator.username) for a in args])
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_issue_token_refuses_a_non_positive_expiry_or_rate(integrator, value):
    for option in ("--expires-in-days", "--rate"):
        with pytest.raises(CommandError):
            run("issue_token", integrator.username, "--name", "x", option, value)
    assert not ApiToken.objects.exists()


def test_issue_token_refuses_an_inactive_user(integrator):
    integrator.is_active = False
    integrator.save()
    with pytest.raises(CommandError, match="inactive"):
        run("issue_token", integrator.username, "--name", "x")
    assert not ApiToken.objects.exists()


def test_revoke_token_by_prefix_or_whole_token_refuses_the_token(integrator):
    first = run("issue_token", integrator.username, "--name", "a", "--plain").strip()
    second = run("issue_token", integrator.username, "--name", "b", "--plain").strip()
    prefix = first.split("_")[1]
    assert "Revoked 1 token(s)." in run("revoke_token", prefix)
    assert status_with(first) == 401 and status_with(second) == 200
    # A pasted whole token is read as its prefix; revoking twice says so.
    assert "Revoked 1 token(s)." in run("revoke_token", second)
    assert "Revoked 0 token(s) (1 already revoked)." in run("revoke_token", prefix)
    assert status_with(second) == 401


def test_revoke_token_with_an_unknown_prefix_revokes_nothing(integrator):
    plain = run("issue_token", integrator.username, "--name", "a", "--plain").strip()
    with pytest.raises(CommandError, match="No token with prefix 0000dead; nothing revoked"):
        run("revoke_token", plain.split("_")[1], "0000dead")
    assert status_with(plain) == 200


def test_revoke_token_for_a_user_revokes_all_of_theirs(integrator, clerk):
    mine = [run("issue_token", integrator.username, "--name", n, "--plain").strip() for n in "ab"]
    other = run("issue_token", clerk.username, "--name", "c", "--plain").strip()
    assert "Revoked 2 token(s)." in run("revoke_token", "--user", integrator.username)
    assert [status_with(p) for p in mine] == [401, 401]
    assert status_with(other) == 200
    with pytest.raises(CommandError, match="not both"):
        run("revoke_token")
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("revoke_token", "--user", "ghost")


def test_list_tokens_shows_status_and_never_the_secret(integrator, clerk):
    kept = run("issue_token", integrator.username, "--name", "Lab", "--rate", "60", "--plain").strip()
    gone = run("issue_token", clerk.username, "--name", "Old feed", "--plain").strip()
    run("revoke_token", gone)
    out = run("list_tokens")
    assert "Lab" in out and "active" in out and "60" in out
    assert "Old feed" in out and "revoked" in out
    assert kept.split("_", 2)[2] not in out  # the secret part
    assert "2 token(s)." in out
    active = run("list_tokens", "--active")
    assert "Lab" in active and "Old feed" not in active and "1 token(s)." in active
    assert "Old feed" in run("list_tokens", "--user", clerk.username)
