"""Revoke API tokens from the command line, by prefix or all of one user's."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiToken
from accounts.services import revoke_tokens
from accounts.tokens import token_prefix


class Command(BaseCommand):
    help = "Revoke API tokens by prefix (the 8 characters after 'mpi_'), or every token of --user."

    def add_arguments(self, parser):
        parser.add_argument("prefixes", nargs="*", metavar="PREFIX")
        parser.add_argument("--user", metavar="USERNAME", help="Revoke every token of this user.")

    def handle(self, *args, prefixes: list[str], user: str | None, **options):
        if bool(prefixes) == bool(user):
            raise CommandError("Name the tokens' prefixes or --user, not both and not neither.")
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"No user named {user!r}.")
            tokens = ApiToken.objects.filter(user=owner)
        else:
            # A whole token pasted by mistake is read as its prefix.
            wanted = {token_prefix(p) or p for p in prefixes}
            tokens = ApiToken.objects.filter(prefix__in=wanted)
            unknown = sorted(wanted - set(tokens.values_list("prefix", flat=True)))
            if unknown:  # nothing is revoked when any is unknown: a typo must not half-apply
                raise CommandError(f"No token with prefix {', '.join(unknown)}; nothing revoked.")
        revoked = revoke_tokens(tokens=tokens)
        already = tokens.count() - revoked
        note = f" ({already} already revoked)" if already else ""
        self.stdout.write(f"Revoked {revoked} token(s){note}.")
