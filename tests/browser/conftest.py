"""Browser tests: Debian's chromium driven by Playwright against Django's live server.

Never ``playwright install``: the browser is the system's /usr/bin/chromium (.ci/run
installs it with apt). Playwright's sync API runs an event loop in this thread, which
Django's ORM would refuse without DJANGO_ALLOW_ASYNC_UNSAFE. It is set for the whole
session, not per test: pytest-playwright's session-scoped Playwright keeps that loop
running until the session ends, so the tests collected after these need it as well.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("MPI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery"  # tests/conftest.py's personas


def pytest_collection_modifyitems(config, items):
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture
def log_in(page, live_server):
    """Log ``user`` in through the admin login page, then open ``path``."""

    def log_in(user, path: str = "/"):
        page.goto(f"{live_server.url}{path}")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}{path}")
        return page

    return log_in
