"""FHIR R4 Patient search: the request parameters, read and checked. Pure: no database.

``parse_search`` turns the (name, value) pairs of a ``GET [base]/Patient?...`` or a
``POST [base]/Patient/_search`` form into a ``SearchRequest``; ``fhir_api.search_query``
turns that into a QuerySet and ``fhir_api.search`` answers with the Bundle. Rules (https://hl7.org/fhir/R4/search.html):

- a comma separates alternatives (OR), a repeated parameter adds a criterion (AND);
  ``\\,`` ``\\|`` ``\\$`` ``\\\\`` escape;
- an unsupported modifier is always an error; an unknown parameter is ignored and
  reported (``Prefer: handling=lenient``, the default) or an error (``strict``);
- a value that cannot be read (a bad date or prefix, an unknown gender code,
  ``_count=abc``) is an error naming the parameter; an empty value is ignored.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from patients.codes import Gender, IdentifierType
from patients.data import whole_number

DEFAULT_COUNT = 20
MAX_COUNT = 100
# Identifier types are codes of this system (identifier:of-type=<system>|<code>|<value>).
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}


class SearchParamError(ValueError):
    """A parameter the server cannot honour: the views answer 400 with an OperationOutcome."""

    def __init__(self, param: str, message: str, *, code: str = "invalid") -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message
        self.code = code  # OperationOutcome issue code: invalid, not-supported, ...


@dataclass(frozen=True)
class ParamSpec:
    """One search parameter as the CapabilityStatement declares it."""

    name: str
    type: str  # FHIR SearchParamType: string, token, date, reference
    modifiers: tuple[str, ...]
    documentation: str
    definition: str = ""

    def __post_init__(self) -> None:
        if not self.definition:
            base = "Resource" if self.name.startswith("_") else "Patient"
            slug = self.name.lstrip("_")
            object.__setattr__(self, "definition", f"http://hl7.org/fhir/SearchParameter/{base}-{slug}")


_STRING_MODS = ("exact", "contains", "missing")
_STRING_DOC = (
    "Case- and accent-insensitive; matches when a word of the field starts with the value "
    "(:contains anywhere, :exact the whole field, case and accents included)."
)
_DATE_DOC = "Prefixes eq ne lt gt le ge sa eb ap; a partial date (1980, 1980-03) is a range."
PARAMS: dict[str, ParamSpec] = {
    p.name: p
    for p in (
        ParamSpec("_id", "token", (), "The logical id (a UUID) of the patient."),
        ParamSpec("_lastUpdated", "date", (), f"When the record last changed. {_DATE_DOC}"),
        ParamSpec(
            "identifier",
            "token",
            ("missing", "of-type", "text"),
            "system|value, |value (no system), system| (any value) or value alone. Exact, "
            "case-sensitive. :of-type=" + IDENTIFIER_TYPE_SYSTEM + "|MR|123; :text matches the type name.",
        ),
        ParamSpec("family", "string", _STRING_MODS, f"Family name (or a part of it). {_STRING_DOC}"),
        ParamSpec("given", "string", _STRING_MODS, f"A given name. {_STRING_DOC}"),
        ParamSpec(
            "name",
            "string",
            _STRING_MODS,
            "Every word of the value starts a word of the patient's family or given names "
            "(the text of a name without parts); case- and accent-insensitive. :exact = a "
            "family name, a given name or a name text, exactly; :contains = anywhere in the names.",
        ),
        ParamSpec("birthdate", "date", ("missing",), f"Date of birth. {_DATE_DOC}"),
        ParamSpec(
            "gender",
            "token",
            ("missing", "not", "text"),
            "male | female | other | unknown (" + GENDER_SYSTEM + "); other codes are an error.",
        ),
        ParamSpec(
            "telecom",
            "token",
            ("missing",),
            "[phone|email|fax|sms|pager|url|other]|value; phones compared in E.164, "
            "emails case-insensitively.",
        ),
        ParamSpec(
            "phone", "token", ("missing",), "A phone number, compared in E.164 (as the registry stores it)."
        ),
        ParamSpec("email", "token", ("missing",), "An email address, case-insensitive."),
        ParamSpec(
            "address",
            "string",
            _STRING_MODS,
            f"Any part of an address: line, city, district, state, postal code, country, text. {_STRING_DOC}",
        ),
        ParamSpec("address-city", "string", _STRING_MODS, f"Address city. {_STRING_DOC}"),
        ParamSpec("address-postalcode", "string", _STRING_MODS, f"Address postal code. {_STRING_DOC}"),
        ParamSpec("address-state", "string", _STRING_MODS, f"Address state. {_STRING_DOC}"),
        ParamSpec("address-country", "string", _STRING_MODS, f"Address country. {_STRING_DOC}"),
        ParamSpec(
            "active",
            "token",
            ("missing", "not"),
            "true | false. Merged-away records are inactive and returned unless active=true.",
        ),
        ParamSpec(
            "link",
            "reference",
            ("missing", "Patient"),
            "Patient/<id>: patients whose link (replaced-by, replaces, refer, seealso) points to it.",
        ),
        ParamSpec(
            "organization",
            "reference",
            ("missing", "Organization"),
            "Organization/<id>: the patients it manages (managingOrganization).",
        ),
        ParamSpec(
            "mothersMaidenName",
            "string",
            _STRING_MODS,
            "IHE PDQm. The registry does not record a mother's maiden name: a value matches no "
            "patient, :missing=true matches every patient.",
            definition="https://profiles.ihe.net/ITI/PDQm/SearchParameter/PatientMothersMaidenName",
        ),
    )
}
SORT_KEYS = ("family", "given", "birthdate", "_lastUpdated", "_id")
# _include values honoured, and the form they are answered as (the target type is optional).
INCLUDES = {
    "Patient:organization": "Patient:organization",
    "Patient:organization:Organization": "Patient:organization",
}
TOTAL_MODES = ("none", "estimate", "accurate")
SUMMARY_MODES = ("true", "false", "count", "text", "data")
# Result parameters the view reads, and ones the renderer handles (not criteria either way).
RESULT_PARAMS = ("_count", "_offset", "_sort", "_total", "_summary", "_elements")
FORMAT_PARAMS = ("_format", "_pretty")
PATIENT_ELEMENTS = frozenset(
    {
        "id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension",
        "identifier", "active", "name", "telecom", "gender", "birthDate", "deceasedBoolean",
        "deceasedDateTime", "deceased", "address", "maritalStatus", "multipleBirthBoolean",
        "multipleBirthInteger", "multipleBirth", "photo", "contact", "communication",
        "generalPractitioner", "managingOrganization", "link",
    }
)  # fmt: skip
# Patient elements marked isSummary in R4 (for _summary=true), and the ones always kept.
SUMMARY_ELEMENTS = frozenset(
    {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased", "address",
     "managingOrganization", "link"}
)  # fmt: skip
MANDATORY_ELEMENTS = frozenset({"resourceType", "id", "meta"})


@dataclass(frozen=True)
class Token:
    """``system|code``: system None = any system, "" = no system; code "" = any code."""

    system: str | None
    code: str


@dataclass(frozen=True)
class DateCriterion:
    """A prefixed date as a half-open range ``[start, end)`` of the same type (date or datetime)."""

    prefix: str
    start: date | datetime
    end: date | datetime


@dataclass(frozen=True)
class OfType:
    type_code: str
    value: str


@dataclass(frozen=True)
class Clause:
    """One ``name[:modifier]=v1,v2`` pair: a criterion that matches any of its values."""

    param: str
    modifier: str
    values: tuple  # str | Token | DateCriterion | UUID | OfType | bool, by type and modifier
    raw: str  # the value as sent, for the self link


@dataclass(frozen=True)
class SortKey:
    key: str
    descending: bool = False


@dataclass(frozen=True)
class SearchRequest:
    clauses: tuple[Clause, ...] = ()
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: tuple[SortKey, ...] = ()
    total: str = "accurate"
    summary: str = ""
    elements: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()  # honoured _include values (INCLUDES)
    ignored: tuple[str, ...] = ()  # unknown parameters skipped under lenient handling
    notes: tuple[str, ...] = field(default=())  # warnings for the outcome entry

    def link_params(self, *, offset: int | None = None) -> list[tuple[str, str]]:
        """The parameters that shaped this result, for the self/next/previous links:
        criteria as sent, then the result parameters in effect (ignored ones left out,
        which is how a client learns what was not used)."""
        pairs = [(c.param + (f":{c.modifier}" if c.modifier else ""), c.raw) for c in self.clauses]
        if self.sort:
            pairs.append(("_sort", ",".join(("-" if s.descending else "") + s.key for s in self.sort)))
        if self.summary:
            pairs.append(("_summary", self.summary))
        if self.elements:
            pairs.append(("_elements", ",".join(self.elements)))
        if self.total != "accurate":
            pairs.append(("_total", self.total))
        pairs += [("_include", value) for value in self.includes]
        pairs.append(("_count", str(self.count)))
        current = self.offset if offset is None else offset
        if current:
            pairs.append(("_offset", str(current)))
        return pairs


# -- values -------------------------------------------------------------------------

_ESCAPED = re.compile(r"\\(.)")


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not escaped with a backslash; the escapes stay."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def parse_bool(param: str, value: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise SearchParamError(param, f"{value!r} is not true or false.")


def parse_token(param: str, value: str) -> Token:
    parts = split_unescaped(value, "|")
    if len(parts) == 1:
        return Token(None, unescape(parts[0]))
    if len(parts) == 2:
        return Token(unescape(parts[0]), unescape(parts[1]))
    raise SearchParamError(param, f"{value!r} has more than one '|' (expected system|code).")


_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap")
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,6}))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1]) + timedelta(days=1)


def parse_date(param: str, value: str, *, with_time: bool) -> DateCriterion:
    """``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.f]][tz]]]]`` as a prefix and a half-open range.

    ``with_time`` (an instant such as _lastUpdated): the range is of aware datetimes
    (a date is a day in UTC, a time without zone is read as UTC); otherwise of dates,
    and a time is refused: a birth date has day precision.
    """
    prefix, text = ("eq", value)
    if value[:2].isalpha():
        prefix, text = value[:2], value[2:]
        if prefix not in _PREFIXES:
            raise SearchParamError(
                param, f"unknown prefix {prefix!r}; expected one of {', '.join(_PREFIXES)}."
            )
    match = _DATE.match(text)
    if not match:
        raise SearchParamError(
            param, f"{value!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD[Thh:mm:ss+zz:zz])."
        )
    g = match.groupdict()
    try:
        year, month, day = int(g["y"]), int(g["m"] or 1), int(g["d"] or 1)
        start_day = date(year, month, day)
        if g["d"]:
            end_day = start_day + timedelta(days=1)
        elif g["m"]:
            end_day = _month_end(year, month)
        else:
            end_day = date(year + 1, 1, 1)
        if g["H"] is None:
            if not with_time:
                return DateCriterion(prefix, start_day, end_day)
            as_dt = lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC)  # noqa: E731
            return DateCriterion(prefix, as_dt(start_day), as_dt(end_day))
        if not with_time:
            raise SearchParamError(param, f"{value!r}: a birth date has no time; use YYYY-MM-DD.")
        fraction = g["f"] or ""
        tz = UTC if g["tz"] in (None, "Z") else datetime.strptime(g["tz"], "%z").tzinfo
        start = datetime(
            year, month, day, int(g["H"]), int(g["M"]), int(g["S"] or 0),
            int(fraction.ljust(6, "0")) if fraction else 0, tzinfo=tz,
        )  # fmt: skip
        if fraction:
            step = timedelta(microseconds=10 ** (6 - len(fraction)))
        else:
            step = timedelta(seconds=1) if g["S"] else timedelta(minutes=1)
        return DateCriterion(prefix, start, start + step)
    except (ValueError, OverflowError) as exc:  # OverflowError: the day after 9999-12-31
        raise SearchParamError(param, f"{value!r} is not a valid date ({exc}).") from None


# The resource type a reference parameter points to.
REFERENCE_TARGETS = {"link": "Patient", "organization": "Organization"}


def parse_reference(param: str, value: str) -> UUID | None:
    """``Patient/<id>`` (``Organization/<id>`` for ``organization``), ``<id>`` or an
    absolute URL ending so. None: a well-formed reference that cannot name one of ours
    (another type, a non-UUID id)."""
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] != REFERENCE_TARGETS.get(param, "Patient"):
        return None
    try:
        return UUID(parts[-1])
    except ValueError:
        return None


def uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def _codes_by_text(choices, text: str) -> tuple[str, ...]:
    """Codes whose display name has a word starting with ``text`` (token :text)."""
    wanted = text.strip().lower()
    return tuple(
        code
        for code, label in choices.choices
        if label.lower().startswith(wanted) or f" {wanted}" in f" {label.lower()}"
    )


def _parse_value(spec: ParamSpec, modifier: str, value: str):
    name = spec.name
    if modifier == "missing":
        return parse_bool(f"{name}:missing", value)
    if spec.type == "date":
        return parse_date(name, value, with_time=name == "_lastUpdated")
    if spec.type == "string":
        return unescape(value)
    if spec.type == "reference":
        return parse_reference(name, unescape(value))
    # token
    if name == "_id":
        return uuid_or_none(unescape(value))
    if name == "active":
        token = parse_token(name, value)
        return parse_bool(name, token.code)
    if modifier == "text":
        return unescape(value)
    if name == "gender":
        token = parse_token(name, value)
        if token.system not in (None, "", GENDER_SYSTEM):
            raise SearchParamError(name, f"unknown code system {token.system!r}; expected {GENDER_SYSTEM}.")
        if token.code not in Gender.values:
            raise SearchParamError(
                name, f"unknown code {token.code!r}; expected one of {', '.join(Gender.values)}."
            )
        return token.code
    if name == "identifier" and modifier == "of-type":
        parts = [unescape(p) for p in split_unescaped(value, "|")]
        if len(parts) != 3 or not all(parts):
            raise SearchParamError("identifier:of-type", f"{value!r}: expected type-system|type-code|value.")
        if parts[0] != IDENTIFIER_TYPE_SYSTEM:
            raise SearchParamError("identifier:of-type", f"type system must be {IDENTIFIER_TYPE_SYSTEM}.")
        return OfType(parts[1], parts[2])
    return parse_token(name, value)


def parse_clause(key: str, value: str) -> Clause | None:
    """One ``key=value`` criterion, or None when the value is empty (ignored)."""
    name, _, modifier = key.partition(":")
    spec = PARAMS[name]
    if modifier and modifier not in spec.modifiers:
        raise SearchParamError(key, f"modifier :{modifier} is not supported on {name}.", code="not-supported")
    if modifier == REFERENCE_TARGETS.get(name):  # link:Patient, organization:Organization: ours all are
        modifier = ""
    alternatives = [v for v in split_unescaped(value, ",") if v.strip()]
    if not alternatives:
        return None
    values = tuple(_parse_value(spec, modifier, v.strip()) for v in alternatives)
    if modifier == "text":
        choices = Gender if name == "gender" else IdentifierType
        values = tuple(code for v in values for code in _codes_by_text(choices, v))
        values = values or ("",)  # a text no type name starts with: matches nothing
    return Clause(param=name, modifier=modifier, values=values, raw=value)


# -- result parameters ----------------------------------------------------------------


def _single(pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise SearchParamError(name, "given more than once.")
    return values[0].strip() if values else None


def _non_negative(name: str, value: str) -> int:
    number = whole_number(value)
    if number is None:
        raise SearchParamError(name, f"{value[:40]!r} is not a non-negative integer (at most 18 digits).")
    return number


def parse_sort(value: str) -> tuple[SortKey, ...]:
    keys = []
    for part in value.split(","):
        part = part.strip()
        descending = part.startswith("-")
        key = part.lstrip("-")
        if key not in SORT_KEYS:
            raise SearchParamError("_sort", f"cannot sort by {key!r}; supported: {', '.join(SORT_KEYS)}.")
        keys.append(SortKey(key, descending))
    return tuple(keys)


def parse_elements(value: str) -> tuple[str, ...]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in PATIENT_ELEMENTS]
    if unknown:
        raise SearchParamError("_elements", f"not Patient elements: {', '.join(unknown)}.")
    return tuple(dict.fromkeys(names))


def _include(key: str, value: str, strict: bool) -> str | None:
    """The INCLUDES entry an ``_include`` asks for; None (with strict: an error) for one
    this server does not honour."""
    wanted = INCLUDES.get(value.strip()) if key == "_include" else None
    if wanted is None and strict:
        raise SearchParamError(
            key,
            f"{value!r} is not supported; {', '.join(sorted(set(INCLUDES.values())))} is.",
            code="not-supported",
        )
    return wanted


def parse_search(pairs: list[tuple[str, str]], *, strict: bool = False) -> SearchRequest:
    """The whole request. ``pairs`` keep their order and repetitions (a repeated
    parameter is an AND); ``strict`` is ``Prefer: handling=strict``."""
    clauses, ignored, includes = [], [], []
    for key, value in pairs:
        name = key.partition(":")[0]
        if name in RESULT_PARAMS or name in FORMAT_PARAMS:
            continue
        if name == "_include":
            wanted = _include(key, value, strict)
            if wanted is None:
                ignored.append(f"{key}={value}")
            elif wanted not in includes:
                includes.append(wanted)
            continue
        if name not in PARAMS:
            if strict:
                raise SearchParamError(
                    key, "unknown search parameter (Prefer: handling=strict).", code="not-supported"
                )
            ignored.append(key)
            continue
        clause = parse_clause(key, value)
        if clause:
            clauses.append(clause)

    count = _single(pairs, "_count")
    offset = _single(pairs, "_offset")
    sort = _single(pairs, "_sort")
    total = _single(pairs, "_total")
    summary = _single(pairs, "_summary")
    elements = _single(pairs, "_elements")
    if total is not None and total not in TOTAL_MODES:
        raise SearchParamError("_total", f"{total!r}: expected one of {', '.join(TOTAL_MODES)}.")
    if summary is not None and summary not in SUMMARY_MODES:
        raise SearchParamError("_summary", f"{summary!r}: expected one of {', '.join(SUMMARY_MODES)}.")
    if summary and elements:
        raise SearchParamError("_elements", "cannot be combined with _summary.")
    notes = [f"Parameter {k!r} is not supported and was ignored." for k in ignored]
    requested = DEFAULT_COUNT if count is None else _non_negative("_count", count)
    if requested > MAX_COUNT:
        notes.append(f"_count={requested} is above the maximum; {MAX_COUNT} entries per page are returned.")
    return SearchRequest(
        clauses=tuple(clauses),
        count=min(requested, MAX_COUNT),
        offset=0 if offset is None else _non_negative("_offset", offset),
        sort=parse_sort(sort) if sort else (),
        total=total or "accurate",
        summary="" if summary in (None, "false") else summary,
        elements=parse_elements(elements) if elements else (),
        includes=tuple(includes),
        ignored=tuple(ignored),
        notes=tuple(notes),
    )


# -- shaping resources ----------------------------------------------------------------


def subset_resource(resource: dict, *, summary: str = "", elements: tuple[str, ...] = ()) -> dict:
    """A resource cut down for ``_elements`` or ``_summary=true|text|data``, tagged
    SUBSETTED when anything was cut (R4 search.html#elements)."""
    if summary == "data":
        keep = set(resource) - {"text"}
    elif summary == "text":
        keep = {"text"}
    elif summary == "true":
        keep = {k for k in resource if k in SUMMARY_ELEMENTS or k.startswith("deceased")}
    elif elements:
        keep = set(elements)
        keep |= {
            k for k in resource for e in elements if e in ("deceased", "multipleBirth") and k.startswith(e)
        }
    else:
        return resource
    keep |= MANDATORY_ELEMENTS
    subset = {k: v for k, v in resource.items() if k in keep}
    if summary in ("data", "") and subset.keys() == resource.keys():
        return subset
    meta = dict(subset.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    subset["meta"] = meta
    return subset
