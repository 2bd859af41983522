from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate

# Extensions the search index and the matcher rely on.
EXTENSIONS = ("pg_trgm", "unaccent", "fuzzystrmatch")


def create_extensions(using="default", **kwargs) -> None:
    """Create the extensions before any table is made.

    Migration 0001 does this too; this receiver covers databases built without
    migrations (``pytest --nomigrations``), whose tables still need the operator classes.
    """
    from django.db import connections

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in EXTENSIONS:
            cursor.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")


def sync_roles(using="default", **kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    from patients.roles import sync_role_groups

    # Only the default database holds users; `using` is a replica or test alias otherwise.
    if using == "default":
        sync_role_groups(Group, Permission)


class PatientsConfig(AppConfig):
    name = "patients"

    def ready(self) -> None:
        pre_migrate.connect(create_extensions, sender=self, dispatch_uid="patients.create_extensions")
        post_migrate.connect(sync_roles, sender=self, dispatch_uid="patients.sync_roles")
