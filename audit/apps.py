from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Access audit trail"

    def ready(self) -> None:
        from audit import receivers  # noqa: F401  (patient writes are audited in their transaction)
