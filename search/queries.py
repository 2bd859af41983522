"""Clerk search: ``search_patients`` for the admin changelist, the search page, REST
and FHIR search alike. A plain function returning a plain result.

How a query runs (one SQL statement; a second, fuzzy one only when the first finds
nothing by name):
1. Candidates come from the most selective indexed criterion (an identifier, a phone,
   an email, a birth date, a postcode) or, when there is none, from the name through
   selective keys: the exact words (tsvector); their first letters with a typed
   birth year ("smi jo 1980") or in pairs ("smi jo"); their sounds in pairs
   (metaphone, "jon smyth" -> John Smith). Each driver applies every filter itself
   and is capped at DRIVER_CAP rows.
2. Every criterion must match; the name must match by words (as prefixes), sound or
   trigram similarity.
3. Hits are ranked by trigram similarity + ts_rank, exact identifier hits first.
4. When the name found nothing, each typed word is trigram-matched against the small
   name vocabulary (search.vocabulary) and the nearest known words are searched:
   trigram similarity over a million name texts is far too slow to drive a search
   (PERFORMANCE-NOTES.md).

Soft-deleted patients have no index row; merged-away ones are only returned by an
identifier or id lookup, flagged ``merged``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from django.db import connections

from mpi.db import read_alias
from search import keys, vocabulary
from search.normalize import phonetic_codes
from search.parsing import (
    BIRTH_DATE,
    BIRTH_YEAR,
    EMAIL,
    IDENTIFIER_KEY,
    IDENTIFIER_VALUE,
    PHONE,
    PHONE_SUFFIX,
    POSTCODE,
    UUID_KIND,
    Criterion,
    SearchQuery,
    build_query,
)

MAX_LIMIT = 200
# Rows each candidate source may contribute; beyond it the total is a lower bound.
DRIVER_CAP = 1000
NAME_SIMILARITY = 0.3  # pg_trgm's default threshold, also used by the % operator
IDENTIFIER_BONUS = 10.0  # exact identifier (or id) hits rank first

# alternative kind -> (SQL predicate on the index row "i", array type of the
# parameter, selectivity rank for choosing the driving criterion or None when no
# index answers it, label in "matched").
_KINDS = {
    UUID_KIND: ("i.patient_id IN (SELECT id FROM patients_patient WHERE uuid = ANY({p}))", "uuid", 0, "id"),
    IDENTIFIER_KEY: ("i.identifier_keys && {p}", "text", 0, "identifier"),
    IDENTIFIER_VALUE: ("i.identifier_values && {p}", "text", 1, "identifier"),
    EMAIL: ("i.emails && {p}", "text", 1, "email"),
    PHONE: ("i.phones && {p}", "text", 1, "phone"),
    PHONE_SUFFIX: ("i.phone_suffixes && {p}", "text", 2, "phone"),
    BIRTH_DATE: ("i.birth_date = ANY({p})", "date", 3, "birth_date"),
    POSTCODE: ("i.postcodes && {p}", "text", 4, "postcode"),
    BIRTH_YEAR: ("i.birth_year = ANY({p})", "int", None, "birth_year"),  # no index: never drives
}
_EXACT_ID_KINDS = (UUID_KIND, IDENTIFIER_KEY, IDENTIFIER_VALUE)


@dataclass(frozen=True)
class SearchHit:
    patient_id: int
    uuid: UUID
    score: float
    matched: tuple[str, ...]  # e.g. ("identifier",), ("name", "birth_date")
    display_name: str
    birth_date: date | None
    gender: str
    merged: bool


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    total: int
    # False when a candidate source hit its cap: ``total`` is then a lower bound.
    total_exact: bool
    has_more: bool


class _Sql:
    """Collects named parameters so that no input is ever formatted into SQL."""

    def __init__(self) -> None:
        self.params: dict[str, object] = {}

    def param(self, value: object, cast: str = "") -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s{'::' + cast if cast else ''}"


def _grouped(criterion: Criterion) -> dict[str, list]:
    groups: dict[str, list] = {}
    for alt in criterion.alternatives:
        groups.setdefault(alt.kind, []).append(alt.value)
    return groups


def _criterion_sql(sql: _Sql, criterion: Criterion) -> list[tuple[str, str]]:
    """(predicate, kind) per alternative kind of a criterion."""
    out = []
    for kind, values in _grouped(criterion).items():
        template, array_type, _, _ = _KINDS[kind]
        out.append((template.format(p=sql.param(values, f"{array_type}[]")), kind))
    return out


def _driver_rank(criterion: Criterion) -> int | None:
    ranks = [_KINDS[alt.kind][2] for alt in criterion.alternatives]
    return None if None in ranks or not ranks else max(ranks)


def _name_parts(sql: _Sql, query: SearchQuery, *, drive: bool, similar: dict[str, list[str]] | None) -> dict:
    """SQL pieces of the name: match predicates, candidate drivers and the score.

    A name matches by its words as prefixes ("smi" finds Smith), by sound (every typed
    word shares a metaphone or soundex key with a name word: "jon smyth" finds John
    Smith), by trigram similarity, or, in the fuzzy pass, by the known name words
    nearest to each typed word (``similar``, from search.vocabulary).

    When the name drives the search (``drive``), each driver is one selective lookup
    (see search/keys.py): the exact words; their first letters with a typed birth
    year ("smi jo 1980") or in pairs ("smi jo"); their sounds in pairs.
    """
    words = list(query.name_words)
    text = sql.param(" ".join(words))
    and_prefix = f"to_tsquery('simple', {sql.param(' & '.join(f'{w}:*' for w in words))})"
    or_prefix = f"to_tsquery('simple', {sql.param(' | '.join(f'{w}:*' for w in words))})"
    sounds = [
        sql.param(sorted(f"{alg}:{code}" for alg, code in phonetic_codes(w).items() if alg != "n"), "text[]")
        for w in words
        if len(w) > 1  # an initial sounds like too much
    ]
    parts = {
        "match": [
            (f"i.search_vector @@ {and_prefix}", "name"),
            (" AND ".join(f"i.phonetic_keys && {p}" for p in sounds) or "false", "name:phonetic"),
            (f"similarity(i.name_text, {text}) >= {NAME_SIMILARITY}", "name:similar"),
        ],
        "score": f"similarity(i.name_text, {text}) + ts_rank(i.search_vector, {or_prefix})",
        "drivers": [],
    }
    if query.family_words:
        family = sql.param(list(query.family_words), "text[]")
        parts["score"] += f" + 0.2 * (i.family_names && {family})::int"
    if similar is not None:  # the fuzzy pass
        groups = ["(" + " | ".join([f"{w}:*", *similar.get(w, [])]) + ")" for w in words]
        fuzzy = f"i.search_vector @@ to_tsquery('simple', {sql.param(' & '.join(groups))})"
        parts["match"].append((fuzzy, "name:similar"))
        parts["drivers"] = [fuzzy]
    elif drive:
        parts["drivers"] = _name_drivers(sql, words, _typed_year(query))
    return parts


def _typed_year(query: SearchQuery) -> int | None:
    """A year typed next to a name ("smith 1980"), which name drivers narrow by.

    "1980" alone may also be an identifier or a postcode; the name drivers read it as
    the birth year (the filters still accept all three readings)."""
    for criterion in query.criteria:
        years = [a.value for a in criterion.alternatives if a.kind == BIRTH_YEAR]
        if years:
            return years[0]
    return None


def _name_drivers(sql: _Sql, words: list[str], year: int | None) -> list[str]:
    keyed = [w for w in words if len(w) > 1]
    exact = " & ".join([*keyed, *([f"y{year}"] if year else [])])
    drivers = [f"i.search_vector @@ to_tsquery('simple', {sql.param(exact)})"] if keyed else []
    if keyed and year:
        prefixes = sorted(keys.prefix_year(keyed, year))
        drivers.append(f"i.block_keys @> {sql.param(prefixes, 'text[]')}")
    elif len(keyed) > 1:  # in either order: which word is the family name is unknown
        pairs = {k for a in keyed for b in keyed if a != b for k in keys.prefix_pair([a], [b])}
        drivers.append(f"i.block_keys && {sql.param(sorted(pairs), 'text[]')}")
    else:  # one word, no year: a prefix of it (the slow path, capped)
        prefix = " & ".join(f"{w}:*" for w in words)
        drivers.append(f"i.search_vector @@ to_tsquery('simple', {sql.param(prefix)})")
    pairs = sorted({k for a in keyed for b in keyed if a != b for k in keys.name_pair([a], [b])})
    if pairs:  # phonetic family + given name, in either order
        drivers.append(f"i.block_keys && {sql.param(pairs, 'text[]')}")
    elif keyed:
        codes = [f"m:{c['m']}" if "m" in c else f"w:{c['w']}" for c in map(phonetic_codes, keyed)]
        codes += [f"y:{year}"] if year else []
        drivers.append(f"i.phonetic_keys @> {sql.param(codes, 'text[]')}")
    return drivers


def _statement(
    query: SearchQuery,
    *,
    limit: int,
    offset: int,
    similar: dict[str, list[str]] | None = None,
) -> tuple[str, dict, list[str]]:
    """One statement: each driver reads its candidates through an index and applies
    every filter itself (so its cap counts real matches), then hits are de-duplicated,
    counted, ranked and paged, and only the page is joined for the public uuid."""
    sql = _Sql()
    filters: list[str] = []
    flags: list[tuple[str, str]] = []  # (SQL boolean, label)
    exact_id: list[str] = []
    for criterion in query.criteria:
        predicates = _criterion_sql(sql, criterion)
        filters.append("(" + " OR ".join(p for p, _ in predicates) + ")")
        flags += [(p, _KINDS[kind][3]) for p, kind in predicates]
        exact_id += [p for p, kind in predicates if kind in _EXACT_ID_KINDS]
    drivers: list[str] = []
    ranked = [(r, c) for c in query.criteria if (r := _driver_rank(c)) is not None]
    if ranked:
        drivers = [p for p, _ in _criterion_sql(sql, min(ranked, key=lambda rc: rc[0])[1])]
    name = _name_parts(sql, query, drive=not drivers, similar=similar) if query.name_words else None
    if name:
        filters.append("(" + " OR ".join(p for p, _ in name["match"]) + ")")
        flags += name["match"]
        drivers = drivers or name["drivers"]
    if query.gender:
        filters.append(f"i.gender = {sql.param(query.gender)}")
    # Merged-away patients answer only to an explicit identifier or id lookup.
    filters.append(f"(NOT i.merged OR {' OR '.join(exact_id) or 'false'})")
    score = name["score"] if name else "0"
    if exact_id:
        score += f" + {IDENTIFIER_BONUS} * ({' OR '.join(exact_id)})::int"

    cap = sql.param(DRIVER_CAP + 1)
    columns = (
        "i.patient_id, i.display_name, i.birth_date, i.gender, i.merged, " + f"({score})::float AS score"
    )
    columns += "".join(f", ({expr}) AS f{n}" for n, (expr, _) in enumerate(flags))
    where = " AND ".join(filters)
    found = " UNION ALL ".join(
        f"(SELECT {n} AS src, {columns} FROM search_patientindex i WHERE ({d}) AND {where} LIMIT {cap})"
        for n, d in enumerate(drivers)
    )
    flag_names = "".join(f", page.f{n}" for n in range(len(flags)))
    statement = f"""
        WITH found AS ({found}),
        hits AS (SELECT DISTINCT ON (patient_id) * FROM found ORDER BY patient_id),
        page AS (SELECT *, count(*) OVER () AS total FROM hits ORDER BY score DESC, patient_id
                 LIMIT {sql.param(limit + 1)} OFFSET {sql.param(offset)})
        SELECT page.patient_id, p.uuid, page.display_name, page.birth_date, page.gender, page.merged,
               page.score, page.total,
               (SELECT coalesce(bool_or(n > {DRIVER_CAP}), false)
                FROM (SELECT count(*) AS n FROM found GROUP BY src) per_source){flag_names}
        FROM page JOIN patients_patient p ON p.id = page.patient_id
        ORDER BY page.score DESC, page.patient_id
    """
    return statement, sql.params, [label for _, label in flags]


def _run(query: SearchQuery, *, limit: int, offset: int, similar=None) -> tuple[list, list[str]]:
    statement, params, labels = _statement(query, limit=limit, offset=offset, similar=similar)
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall(), labels


def _hit(row, labels: list[str]) -> SearchHit:
    matched = tuple(dict.fromkeys(label for label, flag in zip(labels, row[9:], strict=True) if flag))
    return SearchHit(
        patient_id=row[0],
        uuid=row[1],
        display_name=row[2],
        birth_date=row[3],
        gender=row[4],
        merged=row[5],
        score=round(row[6], 4),
        matched=matched,
    )


def search_patients(
    *,
    text: str = "",
    name: str = "",
    birth_date: date | str | None = None,
    gender: str = "",
    identifier: str = "",
    phone: str = "",
    email: str = "",
    postcode: str = "",
    limit: int = 20,
    offset: int = 0,
) -> SearchResult:
    """Find patients from free text and/or structured fields, best first.

    Raises ValidationError (keyed by field name) for a structured value that cannot be
    read. Input with nothing searchable (only a gender, only a year) finds nothing.
    """
    query = build_query(
        text=text,
        name=name,
        birth_date=birth_date,
        gender=gender,
        identifier=identifier,
        phone=phone,
        email=email,
        postcode=postcode,
    )
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    searchable = query.name_words or any(_driver_rank(c) is not None for c in query.criteria)
    if not searchable:
        return SearchResult(hits=[], total=0, total_exact=True, has_more=False)
    name_driven = not any(_driver_rank(c) is not None for c in query.criteria)
    rows, labels = _run(query, limit=limit, offset=offset)
    if not rows and offset:  # paged past the end: still report the total
        first, _ = _run(query, limit=1, offset=0)
        total, capped = (first[0][7], first[0][8]) if first else (0, False)
        return SearchResult(hits=[], total=total, total_exact=not capped, has_more=False)
    if not rows and name_driven:
        # Neither the words nor their sounds matched: retry with the known name words
        # nearest to each typed word (see search.vocabulary).
        similar = vocabulary.similar_words(query.name_words)
        rows, labels = _run(query, limit=limit, offset=offset, similar=similar)
    total = rows[0][7] if rows else 0
    return SearchResult(
        hits=[_hit(row, labels) for row in rows[:limit]],
        total=total,
        total_exact=not (rows and rows[0][8]),
        has_more=len(rows) > limit,
    )
