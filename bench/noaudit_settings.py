"""The production settings without the audit middleware: the benchmark's second gunicorn,
against which the audit's added latency is measured (the same read, unaudited).
Never for serving patients: reads would leave no trace."""

from mpi.settings import *  # noqa: F403

MIDDLEWARE = [m for m in MIDDLEWARE if m != "audit.middleware.AuditMiddleware"]  # noqa: F405
