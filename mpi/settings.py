"""The one settings module. Everything that differs between machines comes from the
environment; the defaults are safe for development (see .env.example)."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mpi import localdb

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    # A real database (DATABASE_URL) without a real key is a misconfigured deployment;
    # the project-local development cluster gets a fixed, clearly insecure key.
    if os.environ.get("DATABASE_URL") and not DEBUG and not env_bool("MPI_ALLOW_DEV_SECRET_KEY"):
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is.")
    SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "patients",
    "search",
    "matching",
    "fhir_api",
    "accounts",
    # Last: its patient_changed receiver runs after indexing and matching, so the audit
    # chain's lock is held only for the end of each write transaction.
    "audit",
]

MIDDLEWARE = [
    "mpi.observability.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files stop here, cacheable
    "mpi.security.SecurityHeadersMiddleware",  # CSP, Cache-Control: no-store
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "mpi.security.SessionTimeoutMiddleware",
    "audit.middleware.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "mpi.urls"
WSGI_APPLICATION = "mpi.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# A statement timeout on every connection, so one pathological query cannot pin a web
# worker: DB_STATEMENT_TIMEOUT_MS for web processes (mpi/wsgi.py and `runserver` set
# MPI_PROCESS=web), DB_COMMAND_STATEMENT_TIMEOUT_MS for management commands and the
# rest (batch work runs statements of minutes). 0 disables the limit.
IS_WEB_PROCESS = os.environ.get("MPI_PROCESS") == "web"
STATEMENT_TIMEOUT_MS = int(
    os.environ.get("DB_STATEMENT_TIMEOUT_MS", "5000")
    if IS_WEB_PROCESS
    else os.environ.get("DB_COMMAND_STATEMENT_TIMEOUT_MS", "3600000")
)


def _database(url: str) -> dict:
    config = dj_database_url.parse(
        url, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")), conn_health_checks=True
    )
    if config["ENGINE"] == "django.db.backends.postgresql":
        config["ENGINE"] = "mpi.postgresql"  # its health check sends nothing (mpi/postgresql/base.py)
    options = config.setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    # Server-side parameters, and psycopg prepares a statement it has run 5 times on a
    # connection: PostgreSQL then skips parsing it, and planning it where one plan fits
    # every value (a full-patient read's plan costs more than running it). Django turns
    # preparing off unless asked (prepare_threshold=None, for connection poolers). Not
    # through a transaction-pooling PgBouncer older than 1.21: DB_SERVER_SIDE_BINDING=false.
    server_side = os.environ.get("DB_SERVER_SIDE_BINDING", "true") == "true"
    options.setdefault("server_side_binding", server_side)
    options.setdefault("prepare_threshold", 5 if server_side else None)
    return config


# DATABASE_URL wins; without it, the project-local cluster that `make db` starts.
DATABASES = {"default": _database(os.environ.get("DATABASE_URL") or localdb.database_url())}
# Search and match reads may go to a read replica (mpi/db.py says which).
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = _database(os.environ["DATABASE_REPLICA_URL"])
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["mpi.db.ReplicaRouter"]
# Parallel test runs (several checkouts, helpers) can each pick their own test database.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
# Failed sign-ins lock the name (and, many more, the address) for a while: accounts/lockout.py.
AUTHENTICATION_BACKENDS = ["accounts.lockout.LockoutModelBackend"]
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
LOGIN_IP_FAILURE_LIMIT = int(os.environ.get("LOGIN_IP_FAILURE_LIMIT", "20"))
LOGIN_LOCKOUT_MINUTES = int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15"))
# How many proxies in front of the app append to X-Forwarded-For; 0: trust none of it.
MPI_TRUSTED_PROXIES = int(os.environ.get("MPI_TRUSTED_PROXIES", "0"))
# Browser sessions: 15 minutes idle, 12 hours at most (mpi/security.py).
SESSION_IDLE_TIMEOUT = int(os.environ.get("SESSION_IDLE_TIMEOUT", "900"))
SESSION_ABSOLUTE_TIMEOUT = int(os.environ.get("SESSION_ABSOLUTE_TIMEOUT", "43200"))
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]  # our CSS and vendored htmx
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Production hardening; TLS is usually terminated by a proxy in front of gunicorn.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("TRUST_X_FORWARDED_PROTO") else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG and SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Phone numbers without a country code are read as numbers of this region (ISO 3166).
MPI_DEFAULT_PHONE_REGION = os.environ.get("MPI_DEFAULT_PHONE_REGION", "US")

# Request lines are JSON (mpi/observability.py) and hold no patient data. Django's own
# per-request warnings ("Not Found: /path") would repeat them with the raw path: off.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"bare": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "requests": {"class": "logging.StreamHandler", "formatter": "bare"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        "mpi.requests": {
            "handlers": ["requests"],
            "level": os.environ.get("REQUEST_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
    },
}

# History rows keep the whole change reason, not the first 100 characters.
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True

# Requests per minute per API client (a token's own rate wins); "off" disables.
MPI_API_RATE = os.environ.get("MPI_API_RATE", "3000")

# REST API (/api/v1/): tokens for systems, sessions for browsers; one error shape.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["mpi.api.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "mpi.api.Pagination",
    "EXCEPTION_HANDLER": "mpi.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Requests per minute per client (token, user or address): accounts/throttling.py.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ClientRateThrottle"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Master Patient Index API",
    "DESCRIPTION": "Register, read, update and cross-reference patients. See docs/rest-api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Vendored Swagger UI (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "NameUseEnum": "patients.codes.NameUse",
        "IdentifierUseEnum": "patients.codes.IdentifierUse",
        "AddressUseEnum": "patients.codes.AddressUse",
        "ContactUseEnum": "patients.codes.ContactUse",
        "ContactSystemEnum": "patients.codes.ContactSystem",
        "IdentifierTypeEnum": "patients.codes.IdentifierType",
        "AddressTypeEnum": "patients.codes.AddressType",
        "LinkTypeEnum": "patients.codes.LinkType",
        "WritableLinkTypeEnum": ["refer", "seealso"],
        # matching/api, search/api: one name per choice set.
        "MatchGradeEnum": ["certain", "probable", "possible"],
        "CandidateStatusEnum": "matching.models.CandidateStatus",
        "MergeStatusEnum": "matching.models.MergeStatus",
        "MergeSideEnum": ["survivor", "duplicate", "both"],
    },
}
