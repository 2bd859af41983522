"""Registry-wide invariants of identity, merges, links and the index, checked in SQL.

``check_integrity`` returns every violation it finds; ``manage.py check_integrity``
prints them and exits 1 when there are any. Each check is one statement (one
consistent snapshot), so a merge committing meanwhile never shows half-done.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection

from matching.models import MergeStatus
from search.maintenance import check_index


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str
    patient_ids: tuple[int, ...]

    def __str__(self) -> str:
        ids = ", ".join(map(str, self.patient_ids))
        return f"[{self.kind}] {self.message}" + (f" (patients {ids})" if ids else "")


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


# Every replaced-by chain walked from each merged-away patient; a walk stops when it
# comes back to a patient it has seen (a cycle), so it always ends.
_WALK = """
WITH RECURSIVE edges AS (
    SELECT patient_id AS src, other_id AS dst FROM patients_link WHERE type = 'replaced-by'
), walk(start, node, path) AS (
    SELECT src, dst, ARRAY[src] FROM edges
    UNION ALL
    SELECT w.start, e.dst, w.path || w.node
    FROM walk w JOIN edges e ON e.src = w.node
    WHERE NOT w.node = ANY(w.path)
)
"""


def _identifiers() -> list[Violation]:
    out = [
        Violation(
            "duplicate-live-identifier",
            f"Identifier {system}|{value} is live on {len(ids)} patients.",
            tuple(ids),
        )
        for system, value, ids in _rows(
            "SELECT system, value, array_agg(DISTINCT patient_id ORDER BY patient_id) "
            "FROM patients_identifier WHERE live GROUP BY system, value HAVING count(*) > 1 "
            "ORDER BY system, value"
        )
    ]
    out += [
        Violation(
            "identifier-live-flag",
            f"Patient {pid}: {n} identifier(s) whose live flag disagrees with the patient's deletion.",
            (pid,),
        )
        for pid, n in _rows(
            "SELECT i.patient_id, count(*) FROM patients_identifier i "
            "JOIN patients_patient p ON p.id = i.patient_id "
            "WHERE i.live <> (p.deleted_at IS NULL) GROUP BY i.patient_id ORDER BY i.patient_id"
        )
    ]
    return out


def _merge_chains() -> list[Violation]:
    out = []
    cycles = {frozenset(path) for (path,) in _rows(_WALK + "SELECT path FROM walk WHERE node = start")}
    for members in sorted(cycles, key=sorted):
        ids = tuple(sorted(members))
        out.append(Violation("merge-cycle", f"replaced-by links form a cycle: {ids}.", ids))
    ends = _rows(
        _WALK + "SELECT w.start, w.node, p.deleted_at IS NOT NULL FROM walk w "
        "JOIN patients_patient p ON p.id = w.node "
        "WHERE NOT EXISTS (SELECT 1 FROM edges e WHERE e.src = w.node) ORDER BY w.start"
    )
    ended = {start for start, _, _ in ends}
    for start, end, deleted in ends:
        if deleted:
            out.append(
                Violation(
                    "chain-without-live-record",
                    f"Patient {start} was merged into a chain that ends at deleted patient {end}.",
                    (start, end),
                )
            )
    in_cycle = {pid for members in cycles for pid in members}
    for (start,) in _rows(
        "SELECT DISTINCT patient_id FROM patients_link WHERE type = 'replaced-by' ORDER BY 1"
    ):
        if start not in ended and start not in in_cycle:
            out.append(
                Violation(
                    "chain-without-live-record",
                    f"Patient {start} was merged into a chain that runs into a cycle.",
                    (start,),
                )
            )
    out += [
        Violation(
            "several-replaced-by", f"Patient {pid} is replaced by several patients: {others}.", (pid, *others)
        )
        for pid, others in _rows(
            "SELECT patient_id, array_agg(other_id ORDER BY other_id) FROM patients_link "
            "WHERE type = 'replaced-by' GROUP BY patient_id HAVING count(*) > 1 ORDER BY patient_id"
        )
    ]
    out += [
        Violation("merged-but-active", f"Patient {pid} has a replaced-by link but is still active.", (pid,))
        for (pid,) in _rows(
            "SELECT DISTINCT l.patient_id FROM patients_link l "
            "JOIN patients_patient p ON p.id = l.patient_id "
            "WHERE l.type = 'replaced-by' AND p.active ORDER BY 1"
        )
    ]
    return out


def _links() -> list[Violation]:
    rows = _rows(
        "SELECT l.patient_id, l.other_id, l.type FROM patients_link l "
        "WHERE l.type IN ('replaced-by', 'replaces', 'seealso') AND NOT EXISTS ("
        "  SELECT 1 FROM patients_link r WHERE r.patient_id = l.other_id AND r.other_id = l.patient_id"
        "  AND r.type = CASE l.type WHEN 'replaced-by' THEN 'replaces'"
        "                           WHEN 'replaces' THEN 'replaced-by' ELSE 'seealso' END"
        ") ORDER BY l.patient_id, l.other_id"
    )
    reverse = {"replaced-by": "replaces", "replaces": "replaced-by", "seealso": "seealso"}
    return [
        Violation(
            "link-without-reverse",
            f"Patient {pid} has a {kind} link to {other}, which has no {reverse[kind]} link back.",
            (pid, other),
        )
        for pid, other, kind in rows
    ]


def _merge_records() -> list[Violation]:
    out = [
        Violation(
            "merge-record-without-link",
            f"Merge {mid} ({dup} into {surv}) stands, but {dup} has no replaced-by link to {surv}.",
            (surv, dup),
        )
        for mid, surv, dup in _rows(
            "SELECT m.id, m.survivor_id, m.duplicate_id FROM matching_merge m WHERE m.status = %s "
            "AND NOT EXISTS (SELECT 1 FROM patients_link l WHERE l.patient_id = m.duplicate_id "
            "AND l.other_id = m.survivor_id AND l.type = 'replaced-by') ORDER BY m.id",
            [MergeStatus.MERGED],
        )
    ]
    out += [
        Violation(
            "link-without-merge-record",
            f"Patient {pid} has a replaced-by link to {other} that no standing merge explains.",
            (pid, other),
        )
        for pid, other in _rows(
            "SELECT l.patient_id, l.other_id FROM patients_link l WHERE l.type = 'replaced-by' "
            "AND NOT EXISTS (SELECT 1 FROM matching_merge m WHERE m.duplicate_id = l.patient_id "
            "AND m.survivor_id = l.other_id AND m.status = %s) ORDER BY 1, 2",
            [MergeStatus.MERGED],
        )
    ]
    return out


def _candidates() -> list[Violation]:
    return [
        Violation(
            "open-candidate-on-retired-record",
            f"Open candidate {cid} involves a merged-away or deleted patient.",
            (a, b),
        )
        for cid, a, b in _rows(
            "SELECT c.id, c.patient_a_id, c.patient_b_id FROM matching_matchcandidate c "
            "JOIN patients_patient a ON a.id = c.patient_a_id "
            "JOIN patients_patient b ON b.id = c.patient_b_id "
            "WHERE c.status = 'open' AND (a.deleted_at IS NOT NULL OR b.deleted_at IS NOT NULL "
            "OR EXISTS (SELECT 1 FROM patients_link l WHERE l.type = 'replaced-by' "
            "AND l.patient_id IN (c.patient_a_id, c.patient_b_id))) ORDER BY c.id"
        )
    ]


def _index(batch_size: int) -> list[Violation]:
    drift = check_index(batch_size=batch_size)
    out = [
        Violation("index-missing", f"Live patient {pid} has no search index row.", (pid,))
        for pid in drift.missing
    ]
    out += [
        Violation("index-extra", f"Deleted patient {pid} still has an index row.", (pid,))
        for pid in drift.extra
    ]
    out += [
        Violation("index-stale", f"Patient {pid}'s index row differs in: {', '.join(fields)}.", (pid,))
        for pid, fields in drift.stale.items()
    ]
    if drift.missing_words:
        out.append(
            Violation(
                "index-vocabulary", f"{drift.missing_words} name words missing from the vocabulary.", ()
            )
        )
    return out


def check_integrity(*, include_index: bool = True, batch_size: int = 1000) -> list[Violation]:
    """Every violated invariant, grouped by kind; an empty list when all hold.

    ``include_index`` compares every search index row with its patient (a full walk,
    the same as ``check_search_index``); the other checks are single SQL statements.
    """
    out = _identifiers() + _merge_chains() + _links() + _merge_records() + _candidates()
    if include_index:
        out += _index(batch_size)
    return out
