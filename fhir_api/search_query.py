"""FHIR Patient search as SQL: a ``SearchRequest`` (fhir_api.search_params) becomes a QuerySet.

Each criterion is a ``Q`` on the patient row or ``pk IN (subquery)``; their AND is the
QuerySet. Where a criterion is selective, the subquery reads an index:

- names (``name``, ``family``, ``given``, default and ``:exact``) are driven by the
  tsvector GIN index of ``search.PatientIndex`` (its weight-A words are the folded
  words of every name) and re-checked on that row's folded name columns, so a name
  starts-with over a million patients is a bitmap index scan, not a table scan;
  ``:contains`` uses the trigram GIN index on the folded name text;
- identifiers use the unique (system, value) and the value indexes; telecom the
  normalised-value index; birth dates the index row's b-tree, _lastUpdated the patient's.

Addresses are matched on the address rows themselves (every part, folded in SQL),
which is a scan of the address table when no other criterion narrows the search.
Soft-deleted patients are never returned (``Patient.objects``); merged-away ones are,
inactive, unless ``active=true``.
"""

from __future__ import annotations

import operator
from datetime import date, datetime, timedelta
from functools import reduce

from django.db import connections
from django.db.models import F, Func, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower
from django.utils import timezone

from fhir_api.search_params import Clause, DateCriterion, SearchRequest, Token
from patients.codes import PHONE_SYSTEMS, ContactSystem
from patients.data import clean_text, normalize_email, normalize_phone
from patients.models import Address, Contact, Identifier, Link, Name, Patient
from search.models import PatientIndex
from search.normalize import name_words, postcode_key

# _total=estimate counts exactly up to here, then takes the planner's estimate.
ESTIMATE_CAP = 10_000
NOTHING = Q(pk__in=[])
EVERYTHING = Q(pk__isnull=False)  # Q() would vanish from an OR


def _in(sql: str, params: list) -> Q:
    return Q(pk__in=RawSQL(sql, params))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- names: the search index ----------------------------------------------------------


def _tsquery(words: list[str], *, prefix: bool) -> str:
    # Words are letter runs (search.normalize.name_words): nothing tsquery would parse.
    # Weight A: name words (the address is C); identifier keywords are A too, hence
    # the re-check on the name columns.
    return " & ".join(f"{w}:{'*' if prefix else ''}A" for w in words)


def _index_sql(words: list[str], checks: list[str], params: list, *, prefix: bool = True) -> Q:
    where = " AND ".join(["i.search_vector @@ to_tsquery('simple', %s)", *checks])
    return _in(
        f"SELECT i.patient_id FROM search_patientindex i WHERE {where}",
        [_tsquery(words, prefix=prefix), *params],
    )


def _name_starts(param: str, value: str) -> Q:
    """Default string match on names: word starts, case and accents folded."""
    words = name_words(value)
    if not words:
        return NOTHING
    if param == "name":
        return _index_sql(words, ["(' ' || i.name_text) LIKE %s"] * len(words), [f"% {w}%" for w in words])
    if param == "family":
        # A family token is a part of the family name or all of it run together
        # ("garcia", "marquez", "garciamarquez"): "garcia marq" runs together too.
        check = "EXISTS (SELECT 1 FROM unnest(i.family_names) t WHERE t LIKE %s)"
        return _index_sql(words, [check], ["".join(words) + "%"])
    check = "EXISTS (SELECT 1 FROM unnest(i.given_names) t WHERE t LIKE %s)"
    return _index_sql(words, [check] * len(words), [f"{w}%" for w in words])


def _name_contains(param: str, value: str) -> Q:
    words = name_words(value)
    if not words:
        return NOTHING
    if param == "name":
        sql = "SELECT i.patient_id FROM search_patientindex i WHERE i.name_text LIKE %s"
        return _in(sql, [f"%{' '.join(words)}%"])
    drive = ["i.name_text LIKE %s"] * len(words)
    column = "i.family_names" if param == "family" else "i.given_names"
    wanted = ["".join(words)] if param == "family" else words
    checks = [f"EXISTS (SELECT 1 FROM unnest({column}) t WHERE t LIKE %s)"] * len(wanted)
    where = " AND ".join(drive + checks)
    return _in(
        f"SELECT i.patient_id FROM search_patientindex i WHERE {where}",
        [f"%{w}%" for w in words] + [f"%{w}%" for w in wanted],
    )


def _name_exact(param: str, value: str) -> Q:
    value = clean_text(value)  # stored names are NFC with collapsed spaces
    match = {
        "family": ("n.family = %s", [value]),
        "given": ("%s = ANY(n.given)", [value]),
        "name": ("(n.family = %s OR %s = ANY(n.given) OR n.text = %s)", [value] * 3),
    }[param]
    words = name_words(value)
    if not words:  # nothing the index knows: the name rows alone
        return _in(f"SELECT n.patient_id FROM patients_name n WHERE {match[0]}", match[1])
    check = f"EXISTS (SELECT 1 FROM patients_name n WHERE n.patient_id = i.patient_id AND {match[0]})"
    return _index_sql(words, [check], match[1], prefix=False)


def _name_missing(param: str, missing: bool) -> Q:
    rows = Name.all_objects.all()
    if param == "family":
        rows = rows.exclude(family="")
    elif param == "given":
        rows = rows.exclude(given=[])
    having = Q(pk__in=rows.values("patient_id"))
    return ~having if missing else having


# -- addresses: the address rows ------------------------------------------------------

_ADDRESS_COLUMNS = {
    "address": ("city", "district", "state", "postal_code", "country", "text"),
    "address-city": ("city",),
    "address-state": ("state",),
    "address-country": ("country",),
    "address-postalcode": ("postal_code",),
}


_CURLY_APOSTROPHE = "\u2019"


def _folded(expr: str) -> str:
    # Both sides are folded by the same SQL, so they agree on every accent.
    # Hyphens, apostrophes and punctuation separate words ("Saint-Étienne", "l'Église").
    return f"translate(lower(unaccent({expr})), '-,./''{_CURLY_APOSTROPHE}', '      ')"


def _address(param: str, modifier: str, value: str) -> Q:
    columns = [f"a.{c}" for c in _ADDRESS_COLUMNS[param]]
    with_lines = param == "address"
    if modifier == "exact":
        value = clean_text(value)
        tests = [f"{c} = %s" for c in columns] + (["%s = ANY(a.line)"] if with_lines else [])
        params = [value] * len(tests)
    elif param == "address-postalcode" and modifier != "contains":
        # Postcodes compare without spaces or dashes: "sw1a1" starts "SW1A 1AA".
        tests = ["replace(replace(upper(a.postal_code), ' ', ''), '-', '') LIKE %s"]
        params = [_like_escape(postcode_key(value)) + "%"]
    else:
        # Default: a word of the part starts with the value; :contains: anywhere.
        lead = "%" if modifier == "contains" else "% "
        pattern = f"%s || {_folded('%s')} || '%%'"
        tests = [f"(' ' || {_folded(c)}) LIKE {pattern}" for c in columns]
        if with_lines:
            tests.append(
                f"EXISTS (SELECT 1 FROM unnest(a.line) l WHERE (' ' || {_folded('l')}) LIKE {pattern})"
            )
        params = [lead, _like_escape(value.strip())] * len(tests)
    return _in(f"SELECT a.patient_id FROM patients_address a WHERE {' OR '.join(tests)}", params)


def _address_missing(param: str, missing: bool) -> Q:
    rows = Address.all_objects.all()
    for column in _ADDRESS_COLUMNS[param] if param != "address" else ():
        rows = rows.exclude(**{column: ""})
    having = Q(pk__in=rows.values("patient_id"))
    return ~having if missing else having


# -- tokens ---------------------------------------------------------------------------


def _identifier(modifier: str, value) -> Q:
    rows = Identifier.all_objects.all()
    if modifier == "of-type":
        rows = rows.filter(type=value.type_code, value=value.value)
    elif modifier == "text":
        rows = rows.filter(type=value)
    else:
        token: Token = value
        if token.system == "":  # |value: no system; every identifier has one
            return NOTHING
        if token.system is not None:
            rows = rows.filter(system=token.system)
        if token.code:
            rows = rows.filter(value=token.code)
        elif token.system is None:
            return NOTHING
    return Q(pk__in=rows.values("patient_id"))


def _contact_values(system: str | None, value: str) -> set[str]:
    """The stored (normalised) forms ``value`` may have under ``system``."""
    value = clean_text(value)
    forms = {value}
    if system in (None, ContactSystem.EMAIL):
        forms.add(normalize_email(value))
    if system in (None, *PHONE_SYSTEMS) and sum(ch.isdigit() for ch in value) >= 3:
        forms.add(normalize_phone(value))
    return forms


def _telecom(param: str, value: Token) -> Q:
    system = {"phone": ContactSystem.PHONE, "email": ContactSystem.EMAIL}.get(param)
    if param == "telecom":
        if value.system == "":
            return NOTHING
        system = value.system
    rows = Contact.all_objects.all()
    if system is not None:
        rows = rows.filter(system=system)
    if value.code:
        rows = rows.filter(normalized_value__in=_contact_values(system, value.code))
    elif system is None:
        return NOTHING
    return Q(pk__in=rows.values("patient_id"))


def _telecom_missing(param: str, missing: bool) -> Q:
    rows = Contact.all_objects.all()
    if param != "telecom":
        rows = rows.filter(system=param)
    having = Q(pk__in=rows.values("patient_id"))
    return ~having if missing else having


# -- dates ----------------------------------------------------------------------------


def _shifted(value, delta: timedelta):
    """``value + delta``, held at the calendar's ends (ap0001, ap9999-12 would overflow)."""
    try:
        return value + delta
    except OverflowError:
        if isinstance(value, datetime):
            return (datetime.max if delta > timedelta(0) else datetime.min).replace(tzinfo=value.tzinfo)
        return date.max if delta > timedelta(0) else date.min


def date_q(column: str, criterion: DateCriterion, *, now: datetime | None = None) -> Q:
    """A point (a birth date, an update instant) against a prefixed range [start, end).

    R4 search.html#prefix with the stored value's own range inside one day (or one
    instant): gt/sa = at or after the end, lt/eb = before the start, ge = at or after
    the start, le = before the end, ne = outside, ap = within 10% of the distance to now.
    """
    start, end = criterion.start, criterion.end
    prefix = criterion.prefix
    if prefix in ("gt", "sa"):
        return Q(**{f"{column}__gte": end})
    if prefix in ("lt", "eb"):
        return Q(**{f"{column}__lt": start})
    if prefix == "ge":
        return Q(**{f"{column}__gte": start})
    if prefix == "le":
        return Q(**{f"{column}__lt": end})
    if prefix == "ap":
        now = now or timezone.now()
        reference = now.date() if isinstance(start, date) and not isinstance(start, datetime) else now
        slack = max(abs(reference - start) / 10, end - start, timedelta(days=1))
        start, end = _shifted(start, -slack), _shifted(end, slack)
    inside = Q(**{f"{column}__gte": start, f"{column}__lt": end})
    if prefix == "ne":
        return Q(**{f"{column}__isnull": False}) & ~inside
    return inside


# -- one criterion --------------------------------------------------------------------


def _value_q(clause: Clause, value) -> Q:
    param, modifier = clause.param, clause.modifier
    if modifier == "missing":
        if param in ("name", "family", "given"):
            return _name_missing(param, value)
        if param in _ADDRESS_COLUMNS:
            return _address_missing(param, value)
        if param in ("telecom", "phone", "email"):
            return _telecom_missing(param, value)
        if param == "identifier":
            having = Q(pk__in=Identifier.all_objects.values("patient_id"))
            return ~having if value else having
        if param == "link":
            having = Q(pk__in=Link.all_objects.values("patient_id"))
            return ~having if value else having
        if param == "organization":
            return Q(managing_organization__isnull=value)
        if param == "birthdate":
            return Q(birth_date__isnull=value)
        if param == "gender":
            return Q(gender="") if value else ~Q(gender="")
        if param == "active":
            return NOTHING if value else EVERYTHING  # never missing
        if param == "mothersMaidenName":
            return EVERYTHING if value else NOTHING  # never recorded
    if param == "_id":
        return Q(uuid=value) if value else NOTHING
    if param in ("name", "family", "given"):
        if modifier == "exact":
            return _name_exact(param, value)
        if modifier == "contains":
            return _name_contains(param, value)
        return _name_starts(param, value)
    if param in _ADDRESS_COLUMNS:
        return _address(param, modifier, value)
    if param == "identifier":
        return _identifier(modifier, value)
    if param in ("telecom", "phone", "email"):
        return _telecom(param, value)
    if param == "gender":
        return Q(gender=value)
    if param == "active":
        return Q(active=value)
    if param == "birthdate":
        if value.prefix == "ne":  # most patients: the patient rows themselves
            return date_q("birth_date", value)
        # The index row carries the birth date with a b-tree (the patient table has none).
        return Q(pk__in=PatientIndex.objects.filter(date_q("birth_date", value)).values("patient_id"))
    if param == "_lastUpdated":
        return date_q("updated_at", value)
    if param == "link":
        if value is None:
            return NOTHING
        return Q(pk__in=Link.all_objects.filter(other__uuid=value).values("patient_id"))
    if param == "organization":
        return Q(managing_organization__uuid=value) if value is not None else NOTHING
    if param == "mothersMaidenName":
        return NOTHING
    raise AssertionError(f"no query for {param}")  # parse_search only lets known ones through


def clause_q(clause: Clause) -> Q:
    """Any of the clause's values (OR); ``:not`` negates the whole criterion."""
    q = reduce(operator.or_, (_value_q(clause, value) for value in clause.values))
    return ~q if clause.modifier == "not" else q


# -- the search -----------------------------------------------------------------------

_FIRST_NAME = Name.all_objects.filter(patient=OuterRef("pk")).order_by("-primary", "id")


def _sort_expression(key: str):
    if key == "family":
        return Lower(Func(Subquery(_FIRST_NAME.values("family")[:1]), function="unaccent"))
    if key == "given":
        return Lower(Func(Subquery(_FIRST_NAME.values("given__0")[:1]), function="unaccent"))
    return F({"birthdate": "birth_date", "_lastUpdated": "updated_at", "_id": "uuid"}[key])


def patient_queryset(search: SearchRequest) -> QuerySet:
    """The live patients matching every criterion, in the requested order (then by
    primary key, so that every page boundary is deterministic)."""
    queryset = Patient.objects.all()
    for clause in search.clauses:
        queryset = queryset.filter(clause_q(clause))
    order = []
    for key in search.sort:
        expression = _sort_expression(key.key)
        order.append(expression.desc(nulls_last=True) if key.descending else expression.asc(nulls_last=True))
    return queryset.order_by(*order, "pk")


def page_ids(queryset: QuerySet, *, count: int, offset: int) -> tuple[list[int], bool]:
    """Primary keys of one page, and whether another page follows (one extra row read)."""
    ids = list(queryset.values_list("pk", flat=True)[offset : offset + count + 1])
    return ids[:count], len(ids) > count


def count_total(queryset: QuerySet, *, mode: str) -> int:
    """``accurate``: count(*); ``estimate``: exact up to ESTIMATE_CAP, then the planner's
    row estimate (never below the cap)."""
    if mode != "estimate":
        return queryset.order_by().count()
    capped = queryset.order_by()[: ESTIMATE_CAP + 1].count()
    if capped <= ESTIMATE_CAP:
        return capped
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else plan
    return max(ESTIMATE_CAP + 1, int(plan["Plan"]["Plan Rows"]))
