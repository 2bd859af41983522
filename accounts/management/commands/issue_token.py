"""Issue an API token from the command line (provisioning scripts, first setup)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import issue_token


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Issue an API token for a user and print it once (only its hash is stored). "
        "--plain prints the token alone, for scripts: TOKEN=$(manage.py issue_token lab --name x --plain)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user the token acts as (its roles are the token's).")
        parser.add_argument("--name", required=True, help="What uses it, e.g. 'Lab system (prod)'.")
        parser.add_argument(
            "--expires-in-days", type=_positive, metavar="DAYS", help="Default: the token never expires."
        )
        parser.add_argument(
            "--rate", type=_positive, metavar="N", help="Requests per minute; default: MPI_API_RATE."
        )
        parser.add_argument("--plain", action="store_true", help="Print only the token.")

    def handle(self, *args, username: str, name: str, expires_in_days, rate, plain: bool, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}: create it in the admin (or createsuperuser).")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive: its tokens would be refused.")
        name = name.strip()
        limit = ApiToken._meta.get_field("name").max_length
        if not name or len(name) > limit:
            raise CommandError(f"--name must be 1 to {limit} characters.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token, secret = issue_token(user=user, name=name, expires_at=expires_at, rate_per_minute=rate)
        if plain:
            self.stdout.write(secret)
            return
        expiry = f"expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never expires"
        self.stdout.write(f"Token {token.prefix} for {username} ({name}; {expiry}):")
        self.stdout.write(secret)
        self.stdout.write("It is shown only now: store it in the client's secrets.")
