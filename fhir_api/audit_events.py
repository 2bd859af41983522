"""The access audit trail as FHIR R4 AuditEvent resources, shaped after IHE BALP.

``audit_event_to_fhir`` maps one ``audit.models.AuditEvent`` row (pure: no database);
``parse_audit_search`` reads the search parameters of ``GET /fhir/AuditEvent`` (pure);
``audit_queryset`` turns them into a QuerySet over the append-only table.

BALP (IHE Basic Audit Log Patterns, https://profiles.ihe.net/ITI/BALP/) in short: ``type``
``rest`` + ``subtype`` the FHIR interaction; ``action`` C/R/U/D/E (a query is E);
``outcome`` 0/4/8; one agent for the user (``requestor``), one for this server; the
patients as ``entity`` with role 1 (Patient); a query as an entity with role 24 (Query)
and the request as sent in base64; the request id as a ``XrequestId`` entity.
docs/fhir.md, "AuditEvent (BALP)".

Paging is by keyset (``_cursor`` = the id of the last event shown), not by offset: the
table grows while an auditor pages through it (reading it appends an event), and an
offset would show an event twice.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC
from uuid import UUID

from django.db.models import Q, QuerySet

from audit.models import Action, AuditEvent, Interface, Outcome
from fhir_api.search_params import DateCriterion, SearchParamError, parse_date, split_unescaped, unescape
from patients.data import whole_number

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
NETWORK_TYPE_IP = "2"
NETWORK_TYPE_URI = "5"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
# Our own codes (the action as recorded, and operations by their name), relative to the base.
ACTION_CODES_PATH = "CodeSystem/audit-action"
USERNAME_PATH = "NamingSystem/username"

# What each recorded action is in BALP terms: (action letter, FHIR interaction or None,
# our code or None). Operations are the interaction ``operation`` plus their name.
_ACTIONS: dict[str, tuple[str, str | None, str | None]] = {
    Action.READ: ("R", "read", None),
    Action.VREAD: ("R", "vread", None),
    Action.HISTORY: ("R", "history-instance", None),
    Action.SEARCH: ("E", "search-type", None),
    Action.CREATE: ("C", "create", None),
    Action.UPDATE: ("U", "update", None),
    Action.DELETE: ("D", "delete", None),
    Action.MATCH: ("E", "operation", "match"),
    Action.MERGE: ("U", "operation", "merge"),
    Action.UNMERGE: ("U", "operation", "unmerge"),
    Action.RESOLVE: ("E", "operation", "ihe-pix"),
    Action.RESTORE: ("U", None, "restore"),
    Action.LINK: ("U", None, "link"),
    Action.DECIDE: ("U", None, "decide"),
    Action.IMPORT: ("C", None, "import"),
    Action.EXPORT: ("R", None, "export"),
    Action.PURGE: ("D", None, "purge"),
}
ACTION_LETTERS = ("C", "R", "U", "D", "E")
OUTCOME_CODES = ("0", "4", "8")
# subtype search values -> the actions they select (history-type/-instance also look at the route).
SUBTYPES: dict[str, tuple[str, ...]] = {}
for _action, (_letter, _interaction, _code) in _ACTIONS.items():
    for _value in (_interaction, _code):
        if _value:
            SUBTYPES.setdefault(_value, ())
            SUBTYPES[_value] += (str(_action),)
SUBTYPES["history-type"] = (str(Action.HISTORY),)

DEFAULT_COUNT = 20
MAX_COUNT = 100
DATE_PREFIXES = ("eq", "lt", "gt", "le", "ge")
PARAMS = ("patient", "agent", "altid", "address", "date", "action", "subtype", "outcome")
RESULT_PARAMS = ("_count", "_sort", "_cursor")
FORMAT_PARAMS = ("_format", "_pretty")


# --- Mapping ------------------------------------------------------------------------------


def _coding(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def outcome_code(outcome: str, status_code: int | None) -> str:
    """BALP/R4 AuditEventOutcome: 0 success, 4 minor failure (refused, 4xx), 8 serious (5xx)."""
    if outcome == Outcome.SUCCESS:
        return "0"
    if outcome == Outcome.DENIED or (status_code is not None and status_code < 500):
        return "4"
    return "8"


def _subtypes(event: AuditEvent, base_url: str) -> list[dict]:
    _, interaction, code = _ACTIONS.get(event.action, ("E", None, event.action))
    if interaction == "history-instance" and "{id}" not in event.route:
        interaction = "history-type"  # GET Patient/_history: every patient's versions
    codings = [_coding(RESTFUL_INTERACTION, interaction)] if interaction else []
    if code:
        codings.append(_coding(f"{base_url}/{ACTION_CODES_PATH}", code))
    return codings


def _detail(name: str, value) -> dict:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return {"type": name, "valueString": text or "-"}


def _context_entity(event: AuditEvent) -> dict:
    """The request: its id (BALP's XrequestId entity) and what else the row recorded."""
    details = [_detail("interface", event.interface)]
    details += [_detail(k, v) for k, v in (("method", event.method), ("route", event.route)) if v]
    details.append(_detail("action", event.action))
    details += [_detail(str(k), v) for k, v in sorted(event.detail.items())]
    entity: dict = {"detail": details}
    if event.request_id:
        entity["what"] = {"identifier": {"value": event.request_id}}
        entity["type"] = _coding(BALP_ENTITY_TYPE, "XrequestId", "X-Request-Id")
    else:
        entity["type"] = _coding(ENTITY_TYPE, "2", "System Object")
        entity["description"] = "The request context (no request id: not an HTTP request)."
    return entity


def _agents(event: AuditEvent, base_url: str) -> list[dict]:
    user: dict = {
        "type": {"coding": [_coding(PARTICIPATION_TYPE, "IRCP", "information recipient")]},
        "requestor": True,
    }
    if event.username:
        user["who"] = {
            "identifier": {"system": f"{base_url}/{USERNAME_PATH}", "value": event.username},
            "display": event.username,
        }
    else:
        user["who"] = {"display": event.client or "anonymous"}
    if event.client:
        user["altId"] = event.client  # token:<prefix> (the API client) or user:<id> (a session)
    if event.ip:
        user["network"] = {"address": str(event.ip), "type": NETWORK_TYPE_IP}
    server = {
        "type": {"coding": [_coding(DICOM, "110152", "Destination Role ID")]},
        "who": {"display": "MPI (this Master Patient Index)"},
        "requestor": False,
        "network": {"address": base_url, "type": NETWORK_TYPE_URI},
    }
    return [user, server]


def audit_event_to_fhir(event: AuditEvent, *, base_url: str) -> dict:
    """One audit row as a FHIR R4 AuditEvent (BALP shape). ``base_url``: ``https://host/fhir``."""
    letter = _ACTIONS.get(event.action, ("E", None, None))[0]
    rest = event.interface in (Interface.REST, Interface.FHIR)
    event_type = (
        _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")
        if rest
        else _coding(DICOM, "110110", "Patient Record")  # admin, pages, management commands
    )
    status = f"HTTP {event.status_code}" if event.status_code else "no HTTP status"
    entities = [
        {
            "what": {"reference": f"Patient/{patient}"},
            "type": _coding(ENTITY_TYPE, "1", "Person"),
            "role": _coding(OBJECT_ROLE, "1", "Patient"),
        }
        for patient in event.patients
    ]
    if event.query:
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "query": base64.b64encode(event.query.encode("utf-8", "surrogatepass")).decode("ascii"),
            }
        )
    entities.append(_context_entity(event))
    return {
        "resourceType": "AuditEvent",
        "id": str(event.pk),
        "meta": {"lastUpdated": _instant(event)},
        "type": event_type,
        "subtype": _subtypes(event, base_url),
        "action": letter,
        "recorded": _instant(event),
        "outcome": outcome_code(event.outcome, event.status_code),
        "outcomeDesc": f"{event.outcome} ({status})",
        "agent": _agents(event, base_url),
        "source": {
            "site": base_url,
            "observer": {"display": "MPI (this Master Patient Index)"},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
        "entity": entities,
    }


def _instant(event: AuditEvent) -> str:
    return event.recorded_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Search parameters --------------------------------------------------------------------


@dataclass(frozen=True)
class AuditSearch:
    """``GET /fhir/AuditEvent?...`` as read. Each tuple of a criterion is an AND of ORs."""

    patients: tuple[tuple[UUID, ...], ...] = ()
    agents: tuple[tuple[str, ...], ...] = ()
    altids: tuple[tuple[str, ...], ...] = ()
    addresses: tuple[tuple[str, ...], ...] = ()
    dates: tuple[tuple[DateCriterion, ...], ...] = ()
    actions: tuple[tuple[str, ...], ...] = ()
    subtypes: tuple[tuple[str, ...], ...] = ()
    outcomes: tuple[tuple[str, ...], ...] = ()
    count: int = DEFAULT_COUNT
    descending: bool = True
    cursor: int | None = None
    raw: tuple[tuple[str, str], ...] = ()  # the criteria as sent, for the paging links
    notes: tuple[str, ...] = ()


def _alternatives(value: str) -> list[str]:
    return [unescape(v.strip()) for v in split_unescaped(value, ",") if v.strip()]


def _patient(value: str) -> UUID:
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] != "Patient":
        raise SearchParamError("patient", f"{value!r} is not a Patient reference (Patient/<id>).")
    try:
        return UUID(parts[-1])
    except ValueError:
        raise SearchParamError("patient", f"{value!r}: patient ids on this server are UUIDs.") from None


def _date(value: str) -> DateCriterion:
    if value[:2].isalpha() and value[:2] not in DATE_PREFIXES:
        raise SearchParamError(
            "date", f"prefix {value[:2]!r} is not supported; use {', '.join(DATE_PREFIXES)}."
        )
    return parse_date("date", value, with_time=True)


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise SearchParamError("address", f"{value!r} is not an IP address.") from None


def _code(param: str, value: str, allowed) -> str:
    code = split_unescaped(value, "|")[-1]  # system|code: the systems are fixed, the code decides
    code = unescape(code)
    if code not in allowed:
        raise SearchParamError(param, f"unknown code {code!r}; expected one of {', '.join(allowed)}.")
    return code


_READERS = {
    "patient": _patient,
    "agent": lambda v: v,
    "altid": lambda v: v,
    "address": _address,
    "date": _date,
    "action": lambda v: _code("action", v, ACTION_LETTERS),
    "subtype": lambda v: _code("subtype", v, tuple(SUBTYPES)),
    "outcome": lambda v: _code("outcome", v, OUTCOME_CODES),
}
_FIELDS = {
    "patient": "patients",
    "agent": "agents",
    "altid": "altids",
    "address": "addresses",
    "date": "dates",
    "action": "actions",
    "subtype": "subtypes",
    "outcome": "outcomes",
}


def _single(pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise SearchParamError(name, "given more than once.")
    return values[0].strip() if values else None


def parse_audit_search(pairs: list[tuple[str, str]]) -> AuditSearch:
    """The request's (name, value) pairs; a repeated parameter is an AND, a comma an OR.

    Unknown parameters and modifiers are an error, never ignored: an auditor who filtered
    by something the server skipped would read every event as the filtered ones.
    """
    criteria: dict[str, list[tuple]] = {field: [] for field in _FIELDS.values()}
    raw = []
    for key, value in pairs:
        if key in RESULT_PARAMS or key in FORMAT_PARAMS:
            continue
        name, colon, modifier = key.partition(":")
        if name not in PARAMS:
            raise SearchParamError(
                key, f"unknown AuditEvent search parameter; supported: {', '.join(PARAMS + RESULT_PARAMS)}.",
                code="not-supported",
            )  # fmt: skip
        if colon:
            raise SearchParamError(key, f"modifier :{modifier} is not supported.", code="not-supported")
        values = tuple(_READERS[name](v) for v in _alternatives(value))
        if values:
            criteria[_FIELDS[name]].append(values)
            raw.append((key, value))
    count = _single(pairs, "_count")
    sort = _single(pairs, "_sort")
    cursor = _single(pairs, "_cursor")
    notes = []
    requested = DEFAULT_COUNT if count is None else whole_number(count)
    if requested is None:
        raise SearchParamError("_count", f"{count[:40]!r} is not a non-negative integer (at most 18 digits).")
    if requested > MAX_COUNT:
        notes.append(f"_count={requested} is above the maximum; {MAX_COUNT} events per page are returned.")
    if sort not in (None, "date", "-date"):
        raise SearchParamError("_sort", f"{sort!r}: only date and -date (the default, newest first).")
    position = None if cursor is None else whole_number(cursor)
    if cursor is not None and position is None:
        raise SearchParamError("_cursor", f"{cursor[:40]!r} is not a cursor from a next link.")
    return AuditSearch(
        **{field: tuple(values) for field, values in criteria.items()},
        count=min(requested, MAX_COUNT),
        descending=sort != "date",
        cursor=position,
        raw=tuple(raw),
        notes=tuple(notes),
    )


# --- The query ----------------------------------------------------------------------------


def _date_q(criterion: DateCriterion) -> Q:
    start, end = criterion.start, criterion.end
    return {
        "eq": Q(recorded_at__gte=start, recorded_at__lt=end),
        "lt": Q(recorded_at__lt=start),
        "le": Q(recorded_at__lt=end),
        "gt": Q(recorded_at__gte=end),
        "ge": Q(recorded_at__gte=start),
    }[criterion.prefix]


def _outcome_q(code: str) -> Q:
    if code == "0":
        return Q(outcome=Outcome.SUCCESS)
    minor = Q(outcome=Outcome.FAILED, status_code__lt=500)
    if code == "4":
        return Q(outcome=Outcome.DENIED) | minor
    return Q(outcome=Outcome.FAILED) & ~minor


def _subtype_q(code: str) -> Q:
    q = Q(action__in=SUBTYPES[code])
    if code == "history-instance":
        q &= Q(route__contains="{id}")
    elif code == "history-type":
        q &= ~Q(route__contains="{id}")
    return q


def _any(values, make) -> Q:
    q = Q()
    for value in values:
        q |= make(value)
    return q


def audit_queryset(search: AuditSearch) -> QuerySet[AuditEvent]:
    """The events ``search`` selects, in its order (recorded, then chain order), from the cursor on."""
    events = AuditEvent.objects.all()
    for alternatives in search.patients:
        # One patient: ``@>`` (contains) on the GIN index; several: ``&&`` (overlap), also indexed.
        if len(alternatives) == 1:
            events = events.filter(patients__contains=list(alternatives))
        else:
            events = events.filter(patients__overlap=list(alternatives))
    for alternatives in search.agents:
        events = events.filter(username__in=alternatives)
    for alternatives in search.altids:
        events = events.filter(client__in=alternatives)
    for alternatives in search.addresses:
        events = events.filter(ip__in=alternatives)
    for alternatives in search.dates:
        events = events.filter(_any(alternatives, _date_q))
    for alternatives in search.actions:
        actions = [str(a) for a, spec in _ACTIONS.items() if spec[0] in alternatives]
        events = events.filter(action__in=actions)
    for alternatives in search.subtypes:
        events = events.filter(_any(alternatives, _subtype_q))
    for alternatives in search.outcomes:
        events = events.filter(_any(alternatives, _outcome_q))
    if search.descending:
        return events.order_by("-recorded_at", "-id")
    return events.order_by("recorded_at", "id")


def after_cursor(events: QuerySet[AuditEvent], search: AuditSearch) -> QuerySet[AuditEvent]:
    """The events after the one named by ``_cursor`` in the search's order (keyset paging)."""
    if search.cursor is None:
        return events
    anchor = AuditEvent.objects.filter(pk=search.cursor).values_list("recorded_at", flat=True).first()
    if anchor is None:
        raise SearchParamError("_cursor", f"{search.cursor} is not a cursor from a next link.")
    if search.descending:
        return events.filter(Q(recorded_at__lt=anchor) | Q(recorded_at=anchor, id__lt=search.cursor))
    return events.filter(Q(recorded_at__gt=anchor) | Q(recorded_at=anchor, id__gt=search.cursor))
