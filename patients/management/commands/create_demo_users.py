"""Create one demo login per role, and print the logins. For demos and development only."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

# (username, role group or None, is_staff, is_superuser). The integrator is an API client:
# no admin site.
DEMO_USERS = (
    ("admin", None, True, True),
    ("clerk", "clerk", True, False),
    ("steward", "steward", True, False),
    ("integrator", "integrator", False, False),
    ("auditor", "auditor", True, False),
)


def demo_password(username: str) -> str:
    return f"{username}-demo-pass"


class Command(BaseCommand):
    help = (
        "Create the demo users admin (superuser), clerk, steward, integrator and auditor, each in "
        "its role group, and print their logins. The password of each is '<username>-demo-pass' "
        "(or --password). Idempotent: existing users get their flags and group set again but keep "
        "their password unless --password is given. For demos and development only: `make run` "
        "calls it; never run it on a registry with real users."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password", help="One password for all the demo users (also resets existing users')."
        )

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        password = options["password"]
        groups = {}
        for _, role, _, _ in DEMO_USERS:
            if role:
                try:
                    groups[role] = Group.objects.get(name=role)
                except Group.DoesNotExist:
                    raise CommandError(f"The group {role!r} is missing: run `manage.py migrate`.") from None
        rows = []
        for username, role, is_staff, is_superuser in DEMO_USERS:
            # No email: "integrator@example.org" is too like "integrator-demo-pass" for the
            # similarity validator.
            user, created = User.objects.get_or_create(username=username)
            user.is_active, user.is_staff, user.is_superuser = True, is_staff, is_superuser
            wanted = password or demo_password(username)
            if created or password:
                try:
                    validate_password(wanted, user)
                except ValidationError as exc:
                    raise CommandError(f"Password for {username!r}: {' '.join(exc.messages)}") from None
                user.set_password(wanted)
                shown = wanted
            elif user.check_password(wanted):
                shown = wanted
            else:
                shown = "(existing password kept; --password resets it)"
            user.save()
            user.groups.set([groups[role]] if role else [])
            rows.append((username, role or "superuser", shown, "created" if created else "exists"))
        self.stdout.write(self.style.WARNING("Demo logins (for demos only; never on a real registry):"))
        for username, role, shown, state in rows:
            self.stdout.write(f"  {username:<11} {shown:<22} {role:<10} {state}")
