import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mpi.settings")
# Web processes get the short statement timeout (settings.STATEMENT_TIMEOUT_MS).
os.environ.setdefault("MPI_PROCESS", "web")
application = get_wsgi_application()
