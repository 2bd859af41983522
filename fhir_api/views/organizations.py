"""``GET /fhir/Organization/<id>`` and ``GET /fhir/Organization``: the registry's facilities.

A Patient's ``managingOrganization`` is ``Organization/<uuid>``, and a create or update
must name one of these: so a client can follow the reference and find the id to send.
Read-only (organizations are kept in the admin). An Organization carries its name, its
``active`` flag and, when it issues identifiers (MRNs), the URI of their namespace as an
identifier with system ``urn:ietf:rfc:3986`` (the FHIR way to say "this value is a
URI"): ``identifier=urn:oid:1.2.3`` finds the facility whose MRNs are in that system.
Not patient data: reads are not in the access audit trail (the request log has them).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.db.models import Q
from django.urls import re_path

from fhir_api import capability
from fhir_api.errors import FhirError, issue
from fhir_api.mapping import ORGANIZATION_URI_SYSTEM, organization_to_fhir
from fhir_api.search import handling, searchset
from fhir_api.search_params import SearchParamError, parse_bool, parse_token, uuid_or_none
from fhir_api.views.base import FhirView, fhir_base_url, fhir_response
from patients.data import whole_number
from patients.models import Organization

VIEW = "patients.view_organization"
DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_OFFSET = 1_000_000  # far beyond any registry's facilities; keeps OFFSET in range
_NAME_MODIFIERS = ("", "exact", "contains")
_KNOWN = {"_id", "name", "identifier", "active", "_count", "_offset", "_format"}


def _name_condition(modifier: str, value: str) -> Q:
    if modifier == "exact":
        return Q(name=value)
    if modifier == "contains":
        return Q(name__icontains=value)
    # FHIR string search: starts with, case-insensitive; any word of the name may start it.
    return Q(name__iregex=r"(^|[^[:alnum:]])" + re.escape(value).replace("\\ ", " "))


def _identifier_condition(value: str) -> Q:
    token = parse_token("identifier", value)
    if token.system is not None and token.system not in ("", ORGANIZATION_URI_SYSTEM):
        return Q(pk__in=[])  # our organizations have no identifier in any other system
    if not token.code:
        return Q() if token.system == ORGANIZATION_URI_SYSTEM else Q(pk__in=[])
    return Q(identifier_system=token.code)


def _search(pairs: list[tuple[str, str]], strict: bool) -> tuple[Q, int, int, list[str]]:
    """The filter, page size and offset of a search; unknown parameters as notes."""
    condition, count, offset, notes = Q(), DEFAULT_COUNT, 0, []
    for key, value in pairs:
        name, _, modifier = key.partition(":")
        if name not in _KNOWN or (modifier and name != "name") or modifier not in _NAME_MODIFIERS:
            if strict:
                message = "is not a search parameter of Organization here."
                raise SearchParamError(key, message, code="not-supported")
            notes.append(f"Search parameter {key} is not supported here and was ignored.")
            continue
        if "\x00" in value:
            raise SearchParamError(key, "contains a NUL character.")
        listed = name in ("_id", "name", "identifier")  # comma = any of
        alternatives = [v for v in value.split(",") if v] if listed else [value]
        if not alternatives:
            continue  # an empty value constrains nothing
        if name == "_id":
            ids = [u for v in alternatives if (u := uuid_or_none(v)) is not None]
            condition &= Q(uuid__in=ids)
        elif name == "name":
            condition &= _or([_name_condition(modifier, v) for v in alternatives])
        elif name == "identifier":
            condition &= _or([_identifier_condition(v) for v in alternatives])
        elif name == "active":
            condition &= Q(active=parse_bool(name, value))
        elif name == "_count":
            count = _whole(name, value, MAX_COUNT)
        elif name == "_offset":
            offset = _whole(name, value, MAX_OFFSET)
    return condition, count, offset, notes


def _or(conditions: list[Q]) -> Q:
    found = Q(pk__in=[])
    for c in conditions:
        found |= c
    return found


def _whole(name: str, value: str, maximum: int) -> int:
    """A whole number; above ``maximum`` it is ``maximum`` (a page past the end is empty)."""
    number = whole_number(value)
    if number is None:
        raise SearchParamError(name, f"{value[:40]!r} is not a whole number (at most 18 digits).")
    return min(number, maximum)


class OrganizationTypeView(FhirView):
    permissions = {"GET": VIEW}

    def get(self, request):
        pairs = [(k, v) for k, values in request.query_params.lists() for v in values]
        try:
            strict = handling(request.headers.get("Prefer")) == "strict"
            condition, count, offset, notes = _search(pairs, strict)
        except SearchParamError as exc:
            raise FhirError(
                400, exc.code, f"Search parameter {exc.param}: {exc.message}", expression=[exc.param]
            ) from None
        found = Organization.objects.filter(condition).order_by("name", "pk")
        total = found.count()
        page = list(found[offset : offset + count]) if count else []
        base = fhir_base_url(request)
        kept = [(k, v) for k, v in pairs if k not in ("_count", "_offset", "_format")]

        def link(relation: str, at: int) -> dict:
            query = urlencode([*kept, ("_count", str(count)), ("_offset", str(at))], safe=":|,/")
            return {"relation": relation, "url": f"{base}/Organization?{query}"}

        links = [link("self", offset), link("first", 0)]
        if count and offset + count < total:
            links.append(link("next", offset + count))
        if count and offset > 0:
            links.append(link("previous", max(0, offset - count)))
        entries = [
            {
                "fullUrl": f"{base}/Organization/{org.uuid}",
                "resource": organization_to_fhir(org),
                "search": {"mode": "match"},
            }
            for org in page
        ]
        issues = [issue("not-supported", n, severity="warning") for n in notes]
        return fhir_response(searchset(entries, links, total=total, issues=issues))


class OrganizationInstanceView(FhirView):
    permissions = {"GET": VIEW}

    def get(self, request, id):
        key = uuid_or_none(id)
        org = Organization.objects.filter(uuid=key).first() if key is not None else None
        if org is None:
            raise FhirError(404, "not-found", f"No Organization/{id}.")
        return fhir_response(organization_to_fhir(org))


urlpatterns = [
    re_path(r"^Organization$", OrganizationTypeView.as_view(), name="fhir-organization-type"),
    re_path(
        r"^Organization/(?P<id>[A-Za-z0-9\-.]{1,64})$",
        OrganizationInstanceView.as_view(),
        name="fhir-organization",
    ),
]


def _register() -> None:
    """Declare Organization in the CapabilityStatement (GET /fhir/metadata)."""
    params = [
        ("_id", "token", "The organization's id (a UUID). Comma = any of."),
        ("name", "string", "Any word of the name starts with it, case-insensitive; :exact, :contains."),
        (
            "identifier",
            "token",
            f"{ORGANIZATION_URI_SYSTEM}|<uri> or <uri>: the system of the identifiers it issues.",
        ),
        ("active", "token", "true or false."),
        ("_count", "number", f"Page size: default {DEFAULT_COUNT}, at most {MAX_COUNT}."),
        ("_offset", "number", "Where the page starts (the next link carries it)."),
    ]
    capability.register_resource(
        "Organization",
        profile="http://hl7.org/fhir/StructureDefinition/Organization",
        interactions=["read", "search-type"],
        search_params=params,
        documentation=(
            "The registry's facilities, which Patient.managingOrganization names; read-only "
            "(kept in the admin). Every role may read them (patients.view_organization)."
        ),
    )


_register()
