FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings to import, not a database or a real secret.
RUN SECRET_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --noinput -v0

RUN useradd --system --uid 10001 --home /app mpi && chown -R mpi /app
USER mpi

EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn mpi.wsgi:application -c gunicorn.conf.py"]
