"""Gunicorn settings; every value can be overridden with the GUNICORN_* variables below."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Sync workers: the app is synchronous and CPU-light per request; 2 x cores + 1.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
accesslog = None  # the app logs requests itself; the access log would repeat them
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# No runtime control socket (gunicornc): nothing to clutter $HOME or /run with.
control_socket_disable = True
# Heartbeat files on tmpfs where there is one (a slow disk can make workers look stuck).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def post_worker_init(worker):
    """Take what the worker has loaded out of the garbage collector's full passes.

    After the app is loaded (and its URLconf, which imports every view), ~140,000
    long-lived objects would be walked by every full collection (40-80 ms each, a
    request's p99) and never freed. ``gc.freeze()`` moves them to a generation the
    collector ignores; what requests allocate is collected as before.
    """
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports every view module now)
    gc.collect()
    gc.freeze()
    # A full pass ran after every 10 middle ones while the frozen objects counted as
    # long-lived; with none left counted, it would run that often on what requests keep
    # (caches). Every 100th instead: a full pass is then rare again, and cheap.
    gc.set_threshold(700, 10, 100)
