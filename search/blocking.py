"""Candidate retrieval (blocking) for the matcher: which patients might this probe be?

One SQL statement: a UNION of blocks, each an indexed lookup on the index table,
each ordered by a cheap relevance score before it is capped (a bare LIMIT could drop
the true record), then merged per patient. Each candidate carries the blocks that
found it, so the matcher can explain itself.

The blocks (each needs the probe fields it compares):
- identifier: a "system|value" key exactly; phone: the 7-digit suffix; email: exactly.
- family_year: phonetic family name (metaphone or soundex) + birth year +-1.
- date_initial: exact birth date + the initial of any name word.
- name_date: trigram similarity of the whole name (>= 0.3, word order ignored) + the
  birth date or one of its data-entry slips (index-only scan of a covering btree).
- name_pair / swapped_names: phonetic family + first given name, no date; and the
  same with given and family swapped.
- name_postcode: phonetic family or first given name + postcode.
- street_postcode: phonetic street name + postcode of one address: a returning
  patient whose name was mangled (typo plus swap, a new married name) and whose
  birth date is missing or mistyped, still at the same address.

The probe is normalised by ``index_values``, the function that builds index rows, so
probe and index are spelled alike. Tolerances live on the probe side: neighbouring
birth years, swapped given/family names, mistyped birth dates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection, connections

from mpi.db import read_alias
from patients.data import PatientData, clean_patient_data, data_from_json
from patients.queries import load_patients
from search import keys
from search.indexing import index_values, street_addresses
from search.normalize import birth_date_variants, family_tokens, name_words

DEFAULT_LIMIT = 50
# Rows a block may read before ranking. Only pathological keys reach it (a phone
# number shared by a whole care home, a made-up "0000000"): at 1,000,000 patients
# the commonest family name + birth year key holds a few hundred rows.
SCAN_CAP = 1000
NAME_SIMILARITY = 0.3
# A candidate's rank: its best block score, plus this per extra block that found it,
# plus a bonus when an exact contact or identifier block found it.
PER_BLOCK = 0.1
EXACT_BLOCKS = {"identifier": 1.0, "phone": 0.5, "email": 0.5}


@dataclass(frozen=True)
class Candidate:
    patient_id: int
    blocks: tuple[str, ...]
    score: float


@dataclass(frozen=True)
class Block:
    name: str
    condition: str  # SQL on the index row "i", with %(name)s parameters
    params: dict


def normalised_probe(probe: PatientData) -> PatientData:
    """The cleaned probe, or the raw one when it does not validate: registration input
    may be half-typed, and every part that can be read still helps."""
    try:
        return clean_patient_data(probe)
    except ValidationError:
        return probe


def _first_given(name) -> list[str]:
    words = [w for g in name.given for w in name_words(g)]
    return words[:1] or name_words(name.text)[:1]


def probe_blocks(probe: PatientData, values: dict, *, today: date | None = None) -> list[Block]:
    """The blocks a normalised probe can use (a block needs the fields it compares).
    ``values`` is the probe's would-be index row."""
    families = [w for n in probe.names for w in family_tokens(n.family or " ".join(name_words(n.text)[-1:]))]
    givens = [w for n in probe.names for w in _first_given(n)]
    born = probe.birth_date
    blocks: list[Block] = []

    def add(name: str, condition: str, **params) -> None:
        blocks.append(Block(name, condition, {f"{name}_{k}": v for k, v in params.items()}))

    def keyed(name: str, block_keys: set[str]) -> None:
        if block_keys:
            add(name, f"i.block_keys && %({name}_keys)s::text[]", keys=sorted(block_keys))

    if values["identifier_keys"]:
        add("identifier", "i.identifier_keys && %(identifier_keys)s::text[]", keys=values["identifier_keys"])
    if values["phone_suffixes"]:
        # The suffix form also meets a number written without its country or area
        # code; an exact E.164 match always shares it.
        add("phone", "i.phone_suffixes && %(phone_keys)s::text[]", keys=values["phone_suffixes"])
    if values["emails"]:
        add("email", "i.emails && %(email_keys)s::text[]", keys=values["emails"])
    if born:
        years = [born.year - 1, born.year, born.year + 1]
        keyed("family_year", keys.family_year(families, years))
        keyed("date_initial", keys.date_initial({w[0] for w in families + givens}, born))
        if values["name_text"]:
            add(
                "name_date",
                f"i.birth_date = ANY(%(name_date_dates)s::date[]) "
                f"AND similarity(i.name_text, %(name)s) >= {NAME_SIMILARITY}",
                dates=birth_date_variants(born, today=today),
            )
    # Given and family name swapped: the probe's given name keyed as a family name.
    # (name_date needs no twin: trigram similarity ignores word order.)
    keyed("swapped_names", keys.name_pair(givens, families))
    keyed("name_pair", keys.name_pair(families, givens))
    keyed("name_postcode", keys.name_postcode(families, givens, values["postcodes"]))
    keyed("street_postcode", keys.street_postcode(street_addresses(probe)))
    return blocks


def _statement(blocks: list[Block], probe_name: str, born: date | None, *, limit: int, exclude: list[int]):
    params: dict = {
        "name": probe_name,
        "born": born,
        "variants": birth_date_variants(born) if born else [],
        "exclude": exclude,
        "scan_cap": SCAN_CAP,
        "cap": limit,
        "limit": limit,
    }
    # Cheap relevance: name similarity, lifted by an exact or near-miss birth date.
    relevance = (
        "similarity(i.name_text, %(name)s)"
        " + CASE WHEN i.birth_date = %(born)s THEN 0.5"
        " WHEN i.birth_date = ANY(%(variants)s::date[]) THEN 0.3 ELSE 0 END"
    )
    parts = []
    for block in blocks:
        params.update(block.params)
        bonus = EXACT_BLOCKS.get(block.name, 0.0)
        parts.append(
            f"""(SELECT patient_id, '{block.name}'::text AS block, s FROM (
                    SELECT i.patient_id, {relevance} + {bonus} AS s FROM search_patientindex i
                    WHERE {block.condition} AND NOT i.merged
                      AND i.patient_id <> ALL(%(exclude)s::bigint[])
                    LIMIT %(scan_cap)s) scanned
                ORDER BY s DESC, patient_id LIMIT %(cap)s)"""
        )
    statement = f"""
        SELECT patient_id, array_agg(block ORDER BY block) AS blocks,
               max(s) + {PER_BLOCK} * (count(*) - 1) AS score
        FROM ({" UNION ALL ".join(parts)}) found
        GROUP BY patient_id
        ORDER BY score DESC, patient_id
        LIMIT %(limit)s
    """
    return statement, params


def find_candidates(
    probe: PatientData, *, limit: int = DEFAULT_LIMIT, exclude: int | list[int] | None = None
) -> list[Candidate]:
    """Candidate patients for ``probe``, best first, at most ``limit``.

    ``exclude`` leaves out patient ids (the probe's own record when matching a stored
    patient). Soft-deleted patients have no index row and merged-away ones are
    skipped, so neither is ever returned. A probe with nothing to compare (no name,
    birth date, identifier, phone or email) has no candidates.
    """
    query = _query(probe, limit=limit, exclude=exclude)
    if query is None:
        return []
    with connections[read_alias()].cursor() as cursor:  # the replica when asked (mpi/db.py)
        cursor.execute(*query)
        return _candidates(cursor.fetchall())


def find_candidates_many(
    probes: Mapping[int, PatientData], *, limit: int = DEFAULT_LIMIT
) -> dict[int, list[Candidate]]:
    """``find_candidates`` for each stored patient's probe (its own id excluded), in one
    psycopg pipeline: the statements go out back to back and PostgreSQL runs them while
    this process builds the next ones, instead of one round trip each (bulk import)."""
    found: dict[int, list[Candidate]] = {pid: [] for pid in probes}
    queries = {pid: _query(probe, limit=limit, exclude=pid) for pid, probe in probes.items()}
    queries = {pid: query for pid, query in queries.items() if query is not None}
    if not queries:
        return found
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors:
        cursors = {}
        with raw.pipeline():
            for pid, (statement, params) in queries.items():
                cursors[pid] = raw.cursor()
                cursors[pid].execute(statement, params)
        for pid, cursor in cursors.items():
            found[pid] = _candidates(cursor.fetchall())
            cursor.close()
    return found


def _query(probe: PatientData, *, limit: int, exclude: int | list[int] | None) -> tuple[str, dict] | None:
    cleaned = normalised_probe(probe)
    values = index_values(cleaned)
    blocks = probe_blocks(cleaned, values)
    if not blocks:
        return None
    excluded = [exclude] if isinstance(exclude, int) else list(exclude or [])
    return _statement(
        blocks, values["name_text"], cleaned.birth_date, limit=max(1, int(limit)), exclude=excluded
    )


def find_candidate_records(
    probe: PatientData, *, limit: int = DEFAULT_LIMIT, exclude: int | list[int] | None = None
) -> list[tuple[Candidate, UUID, PatientData]]:
    """``find_candidates`` with each candidate's ``candidate_records`` entry, in one
    statement: the candidate query joined to the rows it ranked (one round trip and one
    statement fewer for every match, and the index rows are still in cache)."""
    query = _query(probe, limit=limit, exclude=exclude)
    if query is None:
        return []
    statement, params = query
    with connections[read_alias()].cursor() as cursor:  # the replica when asked (mpi/db.py)
        cursor.execute(
            "SELECT f.patient_id, f.blocks, f.score, p.uuid, i.match_data"
            f" FROM ({statement}) f"
            " JOIN search_patientindex i ON i.patient_id = f.patient_id"
            " JOIN patients_patient p ON p.id = f.patient_id"
            " ORDER BY f.score DESC, f.patient_id",
            params,
        )
        rows = cursor.fetchall()
    records = _records([(pid, uuid, values) for pid, _, _, uuid, values in rows])
    ranked = _candidates([(pid, blocks, score) for pid, blocks, score, _, _ in rows])
    return [(c, *records[c.patient_id]) for c in ranked if c.patient_id in records]


def candidate_records(patient_ids: list[int]) -> dict[int, tuple[UUID, PatientData]]:
    """(uuid, data) of candidates to score, from their index rows' ``match_data``.

    One table and one row per candidate, rows the candidate query has just read,
    instead of each candidate's five child tables (at a million patients that read was
    half of ``match_patient``). Rows written before the column existed are read from
    the patient tables, as ``patients.queries.load_patients`` gives them. A patient
    deleted since the candidates were found has no row and is left out.
    """
    if not patient_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.patient_id, p.uuid, i.match_data FROM search_patientindex i"
            " JOIN patients_patient p ON p.id = i.patient_id WHERE i.patient_id = ANY(%s)",
            [list(patient_ids)],
        )
        return _records(cursor.fetchall())


def _records(rows) -> dict[int, tuple[UUID, PatientData]]:
    found, unfilled = {}, []
    for pid, uuid, values in rows:
        if values is None:
            unfilled.append(pid)
        else:
            found[pid] = (uuid, data_from_json(json.loads(values) if isinstance(values, str) else values))
    if unfilled:
        found.update(load_patients(unfilled))
    return found


def _candidates(rows) -> list[Candidate]:
    return [
        Candidate(patient_id=pid, blocks=tuple(blocks), score=round(score, 4)) for pid, blocks, score in rows
    ]


def explain_blocks(
    probe: PatientData, *, analyze: bool = False, limit: int = DEFAULT_LIMIT
) -> dict[str, str]:
    """EXPLAIN of each block on its own, to show that every block uses an index."""
    cleaned = normalised_probe(probe)
    values = index_values(cleaned)
    plans = {}
    for block in probe_blocks(cleaned, values):
        statement, params = _statement(
            [block], values["name_text"], cleaned.birth_date, limit=limit, exclude=[]
        )
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {'(ANALYZE, BUFFERS) ' if analyze else ''}{statement}", params)
            plans[block.name] = "\n".join(row[0] for row in cursor.fetchall())
    return plans
