"""Candidate pairs of the whole index, generated in SQL for batch detection and training.

``search.blocking.find_candidates`` asks, for one probe, which indexed patients share
one of its blocking keys. Asking that once per patient costs ~2 ms each (half an hour
for a million), so batch work turns the same blocks into self-joins over
``search_patientindex``: every patient contributes the keys it is indexed under, and
two patients are a pair when they share a key. Keys as the blocks define them:

=================  ==========================================================
block              key (``search/keys.py`` spells the composite ones)
=================  ==========================================================
identifier         system|value  (``identifier_keys``)
phone              last seven digits  (``phone_suffixes``)
email              the address  (``emails``)
family_year        phonetic family word + birth year; a record keys under its
                   year and the next, so two records meet when their years
                   differ by at most one, as the probe's +-1 year does
date_initial       birth date + initial of a name word
name_pair          phonetic family word + phonetic first given name
swapped_names      a record's name pair read backwards meets another's name pair
name_postcode      phonetic family or first given name + postcode
name_date          the same birth date, and trigram similarity of the full names
                   >= ``search.blocking.NAME_SIMILARITY``
=================  ==========================================================

Only these prefixes of ``block_keys`` are blocks; the others there (``pp:``, ``py:``)
serve the clerk search and are left out. Where batch differs from the probe's lookups
(documented, measured in docs/batch-commands.md): ``name_date`` joins on the exact
birth date only (the probe's mistyped-date variants would multiply the work tenfold;
family_year and name_pair meet most of those slips), and the probe's ``name_pair``
crosses the family and given parts of all its names, where the index keys each name
on its own.

**The per-key cap.** A probe ranks each block's rows and keeps the best 50; a
self-join over a common key ("Smith, born 1980": hundreds of rows at a million
patients) would pair every member with every other. Instead, within each key the
members are sorted and each is paired only with the next ``window`` members
(a sorted neighbourhood): by birth date, then name, for keys without the date (so
same-day records are neighbours), by name for keys that contain the date. A key of
``n`` members gives at most ``n * window`` pairs, so no key can explode, and a key
with at most ``window + 1`` members gives all its pairs. The joins are equi-joins on
(key, rank // window), so their cost is linear in the number of keys too.

Pairs are (a, b) with a < b, deduplicated, with the blocks that found them, in a
temporary table of the current connection, read back in chunks of ``a``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

from django.db import connection

from search.blocking import NAME_SIMILARITY

BLOCKS = (
    "identifier",
    "phone",
    "email",
    "family_year",
    "swapped_names",
    "date_initial",
    "name_date",
    "name_pair",
    "name_postcode",
)
BLOCK_IDS = {name: number for number, name in enumerate(BLOCKS, 1)}
DEFAULT_WINDOW = 4
PAIRS_TABLE = "matching_batch_pairs"
_KEYS_RAW, _KEYS = "matching_batch_keys_raw", "matching_batch_keys"
_B = BLOCK_IDS

# One row per (patient, key). side 0: the record's own key, met by any other side-0
# row of the key; side 1: a key the record looks up but is not indexed under
# (swapped names), met only by side-0 rows. o1, o2: the sort order within a key.
_KEYS_RAW_SQL = f"""
CREATE TEMP TABLE {_KEYS_RAW} AS
WITH live AS (
    SELECT patient_id AS pid, block_keys, birth_year, birth_date, identifier_keys, phone_suffixes, emails,
           coalesce(birth_date - DATE '1800-01-01', -1) AS dob,
           row_number() OVER (ORDER BY name_text COLLATE "C", patient_id)::int AS nr
    FROM search_patientindex WHERE NOT merged
)
SELECT pid, hashtextextended(k, 0) AS kh, 0::smallint AS side,
       (CASE left(k, 3) WHEN 'di:' THEN {_B["date_initial"]} WHEN 'nm:' THEN {_B["name_pair"]}
             ELSE {_B["name_postcode"]} END)::smallint AS blk,
       CASE WHEN k LIKE 'di:%%' THEN 0 ELSE dob END AS o1, nr AS o2
    FROM live, unnest(block_keys) k WHERE left(k, 3) IN ('di:', 'nm:', 'fp:', 'gp:')
UNION ALL
SELECT pid, hashtextextended(left(k, length(k) - length(birth_year::text)) || (birth_year + s), 0),
       0, {_B["family_year"]}, dob, nr
    FROM live, unnest(block_keys) k, (VALUES (0), (1)) shift(s) WHERE k LIKE 'fy:%%'
UNION ALL
SELECT pid, hashtextextended('nm:' || split_part(k, ':', 3) || ':' || split_part(k, ':', 2), 0),
       1, {_B["swapped_names"]}, dob, nr
    FROM live, unnest(block_keys) k
    WHERE k LIKE 'nm:%%' AND split_part(k, ':', 2) <> split_part(k, ':', 3)
UNION ALL
SELECT pid, hashtextextended('i:' || k, 0), 0, {_B["identifier"]}, dob, nr
    FROM live, unnest(identifier_keys) k
UNION ALL
SELECT pid, hashtextextended('p:' || k, 0), 0, {_B["phone"]}, dob, nr FROM live, unnest(phone_suffixes) k
UNION ALL
SELECT pid, hashtextextended('e:' || k, 0), 0, {_B["email"]}, dob, nr FROM live, unnest(emails) k
UNION ALL
SELECT pid, hashtextextended('bd:' || birth_date, 0), 0, {_B["name_date"]}, 0, nr
    FROM live WHERE birth_date IS NOT NULL
"""

# Keys with a single row pair nothing: dropped before the (costly) sort. r: side-0
# rows are numbered 1..n within their key; a side-1 row gets the number of side-0
# rows sorted before it, i.e. it sits between r and r + 1.
_KEYS_SQL = f"""
CREATE TEMP TABLE {_KEYS} AS
SELECT kh, side, blk, pid, r, r / %(window)s AS bucket FROM (
    SELECT kh, side, blk, pid,
           (count(*) FILTER (WHERE side = 0)
               OVER (PARTITION BY kh ORDER BY o1, o2, side, pid ROWS UNBOUNDED PRECEDING))::int AS r
    FROM {_KEYS_RAW}
    WHERE kh IN (SELECT kh FROM {_KEYS_RAW} GROUP BY kh HAVING count(*) > 1)
) ranked
"""

# A side-0 row meets the next `window` side-0 rows; a side-1 row the `half` side-0
# rows on either side of its place. The buckets turn both into equi-joins.
_PAIRS_SQL = f"""
CREATE TEMP TABLE {PAIRS_TABLE} AS
SELECT least(x.pid, y.pid) AS a, greatest(x.pid, y.pid) AS b,
       array_agg(DISTINCT (CASE WHEN x.side = 1 THEN x.blk ELSE y.blk END)::smallint) AS blocks
FROM {_KEYS} x
JOIN (VALUES (-1), (0), (1)) d(off) ON x.side = 1 OR d.off >= 0
JOIN {_KEYS} y ON y.kh = x.kh AND y.bucket = x.bucket + d.off AND y.side = 0
WHERE x.pid <> y.pid
  AND least(x.pid, y.pid) > %(after)s
  AND CASE WHEN x.side = 0 THEN y.r - x.r BETWEEN 1 AND %(window)s
           ELSE y.r BETWEEN x.r - %(half)s + 1 AND x.r + %(half)s END
GROUP BY 1, 2
"""

# name_date needs the names to be alike too; checked once per pair it alone found.
_NAME_DATE_FILTER_SQL = f"""
DELETE FROM {PAIRS_TABLE} p USING search_patientindex i, search_patientindex j
WHERE p.blocks = ARRAY[{_B["name_date"]}]::smallint[] AND i.patient_id = p.a AND j.patient_id = p.b
  AND similarity(i.name_text, j.name_text) < %(similarity)s
"""


@dataclass(frozen=True)
class PairStats:
    pairs: int
    key_rows: int
    seconds: float


def _execute(cursor, sql: str, params: dict | None = None) -> None:
    cursor.execute(sql, params or {})


def drop_pairs() -> None:
    with connection.cursor() as cursor:
        for table in (_KEYS_RAW, _KEYS, PAIRS_TABLE):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")


def build_pairs(*, window: int = DEFAULT_WINDOW, after: int = 0) -> PairStats:
    """Fill the connection's temporary pair table with the pairs (a, b) of the index,
    a > ``after`` (resuming), each with the blocks that found it."""
    if window < 1:
        raise ValueError("The window must be at least 1.")
    started = time.perf_counter()
    params = {"window": window, "half": max(1, window // 2), "after": after, "similarity": NAME_SIMILARITY}
    drop_pairs()
    with connection.cursor() as cursor:
        # Big sorts and hash joins: give them memory for this session's statements.
        cursor.execute("SET work_mem = '256MB'")
        try:
            _execute(cursor, _KEYS_RAW_SQL)
            _execute(cursor, _KEYS_SQL, params)
            cursor.execute(f"SELECT count(*) FROM {_KEYS}")
            key_rows = cursor.fetchone()[0]
            cursor.execute(f"DROP TABLE {_KEYS_RAW}")
            cursor.execute(f"ANALYZE {_KEYS}")
            _execute(cursor, _PAIRS_SQL, params)
            cursor.execute(f"DROP TABLE {_KEYS}")
            _execute(cursor, _NAME_DATE_FILTER_SQL, params)
            cursor.execute(f"CREATE INDEX ON {PAIRS_TABLE} (a, b)")
            cursor.execute(f"ANALYZE {PAIRS_TABLE}")
            cursor.execute(f"SELECT count(*) FROM {PAIRS_TABLE}")
            pairs = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET work_mem")
    return PairStats(pairs=pairs, key_rows=key_rows, seconds=time.perf_counter() - started)


def block_names(ids) -> tuple[str, ...]:
    return _block_names(tuple(ids))


@cache
def _block_names(ids: tuple[int, ...]) -> tuple[str, ...]:
    # A few dozen combinations name ten million pairs at 1M: worked out once each, and
    # the pairs share their tuples (pickle then sends each combination once a chunk).
    return tuple(sorted(BLOCKS[i - 1] for i in set(ids)))


def pair_chunk(*, after: int, patients: int) -> list[tuple[int, int, tuple[str, ...]]]:
    """The pairs of the next ``patients`` values of ``a`` above ``after``, by (a, b)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT a, b, blocks FROM {PAIRS_TABLE}
                WHERE a IN (SELECT DISTINCT a FROM {PAIRS_TABLE} WHERE a > %s ORDER BY a LIMIT %s)
                ORDER BY a, b""",
            [after, patients],
        )
        return [(a, b, block_names(blocks)) for a, b, blocks in cursor.fetchall()]


def count_pairs(block: str | None = None) -> int:
    with connection.cursor() as cursor:
        if block is None:
            cursor.execute(f"SELECT count(*) FROM {PAIRS_TABLE}")
        else:
            cursor.execute(f"SELECT count(*) FROM {PAIRS_TABLE} WHERE %s = ANY(blocks)", [BLOCK_IDS[block]])
        return cursor.fetchone()[0]


def count_pairs_by_block() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT blk, count(*) FROM {PAIRS_TABLE}, unnest(blocks) blk GROUP BY blk")
        return {BLOCKS[blk - 1]: n for blk, n in cursor.fetchall()}


def sample_pairs(*, block: str, count: int, seed: int) -> list[tuple[int, int]]:
    """Up to ``count`` pairs found by ``block``, a pseudo-random sample fixed by ``seed``."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT a, b FROM {PAIRS_TABLE} WHERE %s = ANY(blocks)
                ORDER BY md5(a || ':' || b || ':' || %s), a, b LIMIT %s""",
            [BLOCK_IDS[block], seed, count],
        )
        return cursor.fetchall()
