"""API tokens: Bearer/Token headers, refusals with a reason, nothing stored in clear."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import issue_token, revoke_tokens
from accounts.tokens import hash_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/patients/"


def get(header: str):
    return APIClient().get(URL, HTTP_AUTHORIZATION=header)


def message(response) -> str:
    return response.json()["errors"][0]["message"]


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_a_valid_token_authenticates(integrator, keyword):
    _, plain = issue_token(user=integrator, name="lab")
    assert get(f"{keyword} {plain}").status_code == 200


def test_only_a_hash_of_the_token_is_stored(integrator):
    token, plain = issue_token(user=integrator, name="lab")
    token.refresh_from_db()
    assert token.key_hash == hash_token(plain)
    stored = [str(v) for v in ApiToken.objects.filter(pk=token.pk).values().get().values()]
    assert not any(plain in value for value in stored)
    assert plain.startswith(f"mpi_{token.prefix}_")


def test_a_wrong_secret_with_a_real_prefix_is_refused(integrator):
    _, plain = issue_token(user=integrator, name="lab")
    response = get(f"Bearer {plain[:-2]}xx")
    assert response.status_code == 401
    assert message(response) == "Invalid token."


def test_a_revoked_token_is_refused_with_the_reason(integrator):
    token, plain = issue_token(user=integrator, name="lab")
    revoke_tokens(tokens=ApiToken.objects.filter(pk=token.pk))
    response = get(f"Bearer {plain}")
    assert response.status_code == 401
    assert message(response) == "The token was revoked."


def test_an_expired_token_is_refused_with_the_reason(integrator):
    _, plain = issue_token(user=integrator, name="lab", expires_at=timezone.now() - timedelta(seconds=1))
    response = get(f"Bearer {plain}")
    assert response.status_code == 401
    assert message(response) == "The token has expired."


def test_a_token_of_an_inactive_user_is_refused(integrator):
    _, plain = issue_token(user=integrator, name="lab")
    integrator.is_active = False
    integrator.save()
    response = get(f"Bearer {plain}")
    assert response.status_code == 401
    assert message(response) == "The token's user is inactive."


def test_no_credentials_is_401_with_a_challenge(db):
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_last_used_is_written_at_most_once_a_minute(integrator):
    token, plain = issue_token(user=integrator, name="lab")
    get(f"Bearer {plain}")
    token.refresh_from_db()
    first_use = token.last_used_at
    assert first_use is not None

    get(f"Bearer {plain}")
    token.refresh_from_db()
    assert token.last_used_at == first_use

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first_use - timedelta(minutes=2))
    get(f"Bearer {plain}")
    token.refresh_from_db()
    assert token.last_used_at > first_use


def test_revoking_keeps_the_first_revocation_date(integrator):
    token, _ = issue_token(user=integrator, name="lab")
    earlier = timezone.now() - timedelta(days=1)
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=earlier)
    assert revoke_tokens(tokens=ApiToken.objects.all()) == 0
    token.refresh_from_db()
    assert token.revoked_at == earlier


def test_permissions_come_with_the_token_and_changes_apply_on_the_next_request(
    outsider, django_assert_num_queries
):
    """The token query brings the user's permissions (direct and through groups): a role
    granted or taken away counts from the very next request, without a query of its own."""
    from django.contrib.auth.models import Group, Permission

    _, plain = issue_token(user=outsider, name="lab")
    header = f"Bearer {plain}"
    assert get(header).status_code == 403
    outsider.groups.add(Group.objects.get(name="integrator"))
    assert get(header).status_code == 200
    outsider.groups.clear()
    assert get(header).status_code == 403
    outsider.user_permissions.add(Permission.objects.get(codename="view_patient"))
    assert get(header).status_code == 200


def test_a_superusers_token_has_every_permission(admin_user):
    _, plain = issue_token(user=admin_user, name="ops")
    assert get(f"Bearer {plain}").status_code == 200
    assert (
        APIClient()
        .get(
            "/api/v1/patients/00000000-0000-0000-0000-000000000000/history/",
            HTTP_AUTHORIZATION=f"Bearer {plain}",
        )
        .status_code
        == 404
    )
