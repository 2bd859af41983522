"""Admins issue tokens (the plain token shown once) and revoke them."""

import re

import pytest
from django.contrib.messages import get_messages

from accounts.models import ApiToken
from accounts.services import issue_token
from accounts.tokens import hash_token

pytestmark = pytest.mark.django_db


def test_admin_creates_a_token_and_sees_it_exactly_once(client, admin_user, integrator):
    client.force_login(admin_user)
    response = client.post(
        "/admin/accounts/apitoken/add/", {"user": integrator.pk, "name": "Lab system", "expires_at": ""}
    )
    assert response.status_code == 302
    token = ApiToken.objects.get()
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    plain = next(re.search(r"<code>(mpi_\S+)</code>", m).group(1) for m in shown if "<code>" in m)
    assert hash_token(plain) == token.key_hash
    assert token.user == integrator

    # The page after saving shows it; no later page does. And it works.
    assert plain in client.get(response["Location"]).content.decode()
    assert client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 200
    for page in ("/admin/accounts/apitoken/", f"/admin/accounts/apitoken/{token.pk}/change/"):
        assert plain not in client.get(page).content.decode()


def test_admin_revokes_tokens_with_an_action(client, admin_user, integrator):
    token, plain = issue_token(user=integrator, name="Lab system")
    client.force_login(admin_user)
    response = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke_selected", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.status == "revoked"
    api = client.get("/api/v1/patients/", HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert api.status_code == 401


def test_clerks_cannot_manage_tokens(client, clerk):
    client.force_login(clerk)
    assert client.get("/admin/accounts/apitoken/").status_code == 403
