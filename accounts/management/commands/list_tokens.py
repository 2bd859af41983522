"""List API tokens: who, what for, status, last use. Never the secret (it is not stored)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts.models import ApiToken


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


class Command(BaseCommand):
    help = "List API tokens (prefix, user, name, status, created, expires, last used, rate)."

    def add_arguments(self, parser):
        parser.add_argument("--user", metavar="USERNAME", help="Only this user's tokens.")
        parser.add_argument("--active", action="store_true", help="Only tokens that authenticate now.")

    def handle(self, *args, user: str | None, active: bool, **options):
        tokens = ApiToken.objects.select_related("user").order_by("user__username", "-created_at")
        if user:
            tokens = tokens.filter(user__username=user)
        rows = [
            (
                t.prefix,
                t.user.username,
                t.name,
                t.status,
                _when(t.created_at),
                _when(t.expires_at),
                _when(t.last_used_at),
                str(t.rate_per_minute or "default"),
            )
            for t in tokens
            if not active or t.status == "active"
        ]
        header = (
            "prefix",
            "user",
            "name",
            "status",
            "created UTC",
            "expires UTC",
            "last used UTC",
            "rate/min",
        )
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        self.stdout.write(f"{len(rows)} token(s).")
