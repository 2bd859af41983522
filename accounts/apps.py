from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "API access"

    def ready(self) -> None:
        # Registers the OpenAPI description of the token scheme with drf-spectacular.
        # Signal receivers: failed sign-ins are recorded, sign-ins start the session clock.
        from accounts import (
            lockout,  # noqa: F401
            schema,  # noqa: F401
        )
        from mpi import security  # noqa: F401
