"""Every GET route, its path parameters filled with odd values, answers without a 500.

The fuzzers cover the REST and FHIR APIs' documented parameters; this walks the whole
URL configuration (admin, steward pages, search page, APIs) with ids that are not
numbers, not UUIDs, too large for any column or for int() itself, and a NUL.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver

pytestmark = pytest.mark.django_db

ODD_VALUES = [
    *("0", "-1", "abc", "%00", "²", "99999999999999999999999", "9" * 5000),
    "00000000-0000-0000-0000-000000000000",
]
QUERY = "?page=99999999999999999999&q=%C2%B2%C2%B2%C2%B2%C2%B2&o=zz&status=zzz&id=99999999999999999999"
_PARAM = re.compile(r"<(?:\w+:)?\w+>|\(\?P<\w+>[^)]*\)")


def _patterns(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def odd_paths() -> list[str]:
    paths = set()
    for raw in _patterns(get_resolver().url_patterns):
        raw = raw.replace("^", "").replace("$", "").replace("(?:/|)", "/").replace("\\", "")
        if not _PARAM.search(raw):
            continue
        for value in ODD_VALUES:
            path = _PARAM.sub(value, raw)
            if not re.search(r"[()\[\]*?+|]", path):  # regex left over: not a concrete path
                paths.add("/" + path)
    return sorted(paths)


def test_the_walk_reaches_the_apps_routes():
    paths = odd_paths()
    for part in ("/admin/patients/patient/abc/", "/api/v1/patients/abc/", "/fhir/Patient/abc", "/review/"):
        assert any(part in p for p in paths), part


@pytest.mark.parametrize("role", ["admin_user", "steward", "anonymous"])
def test_no_route_answers_500_to_an_odd_id(request, role):
    client = Client(raise_request_exception=False)
    if role != "anonymous":
        client.force_login(request.getfixturevalue(role))
    failures = [
        (path + query, status)
        for path in odd_paths()
        for query in ("", QUERY)
        if (status := client.get(path + query).status_code) >= 500
    ]
    assert failures == []
