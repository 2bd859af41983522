"""Matching a batch of newly imported patients (the bulk importer's receiver).

``patients.bulk`` sends ``patients_bulk_created`` inside the batch's transaction after
the search app has indexed the batch, so every new patient is matched against the
registry *and* against the rest of its batch.

``match_new_patients`` is ``refresh_candidates_for`` for many new patients at once,
with the same retrieval (``search.blocking.find_candidates``), the same model and
term frequencies, the same grade floor and ordering, and the candidates
``record_candidate`` would open (tests/imports/test_import_writes.py checks that the
outcomes agree). It is cheaper per patient because it loads the model once per batch,
takes the probes from the data just written instead of reading them back, loads and
prepares each candidate record once per batch instead of once per probe (the ORM
reads were three quarters of the per-patient matcher's CPU time in an import,
docs/import.md), and opens the candidates with patients from before the batch in one
COPY with history (such a pair cannot exist yet: one of them is new).
"""

from __future__ import annotations

from matching.model import MatchGrade
from matching.models import CandidateStatus, MatchCandidate, NameFrequency
from matching.prepare import family_tf_key, given_tf_key
from matching.services import (
    CANDIDATE_POOL,
    GRADE_RANK,
    OPENED,
    MatchOutcome,
    active_matcher,
    close_candidate,
    frequency_counts,
    matching_enabled,
    new_candidate,
    record_candidate,
    refresh_candidates_for,
)
from patients.copyrows import insert_with_history
from patients.data import PatientData, in_stored_order
from patients.models import Patient
from search.blocking import candidate_records, find_candidates_many


def on_patients_bulk_created(
    sender, *, patient_ids: list[int], data: dict[int, PatientData] | None = None, actor=None,
    match: bool = True, **kwargs,
):  # fmt: skip
    """Match each new patient; returns ``{"duplicates_opened": n}`` for the importer's summary."""
    if not (match and matching_enabled()):
        return {}
    if data is None:
        opened = set()
        for patient in Patient.all_objects.filter(pk__in=patient_ids).order_by("pk"):
            opened.update(c.pk for c in refresh_candidates_for(patient, actor=actor, changed=True))
        return {"duplicates_opened": len(opened)}
    return {"duplicates_opened": match_new_patients(data, actor=actor)}


def batch_term_frequencies(probes: dict[int, PatientData]) -> dict[int, dict[str, dict[str, float]]]:
    """``services.term_frequencies`` of each probe, from one query for the whole batch."""
    wanted = {
        pid: {
            NameFrequency.Kind.FAMILY: {family_tf_key(n.family) for n in probe.names if n.family},
            NameFrequency.Kind.GIVEN: {given_tf_key(n.given) for n in probe.names if n.given},
        }
        for pid, probe in probes.items()
    }
    counts = frequency_counts(
        family={key for kinds in wanted.values() for key in kinds[NameFrequency.Kind.FAMILY]},
        given={key for kinds in wanted.values() for key in kinds[NameFrequency.Kind.GIVEN]},
    )
    result = {}
    for pid, kinds in wanted.items():
        tf: dict[str, dict[str, float]] = {}
        for kind, probe_keys in kinds.items():
            total = counts.get((kind, ""), 0)
            if total > 0:
                tf[kind] = {key: counts[(kind, key)] / total for key in probe_keys if (kind, key) in counts}
        result[pid] = tf
    return result


def match_new_patients(data: dict[int, PatientData], *, actor=None) -> int:
    """Open candidates for patients just created from ``data``; returns how many were opened.

    A new patient has no candidates before this batch, so every candidate touched here
    was opened by it; a pair inside the batch is opened by its first patient and
    re-scored (or closed, if it no longer reaches ``possible``) by its second, as two
    successive registrations would.
    """
    version, model = active_matcher()
    floor = GRADE_RANK[MatchGrade.POSSIBLE]
    probes = {pid: in_stored_order(d) for pid, d in sorted(data.items())}
    found = find_candidates_many(probes, limit=CANDIDATE_POOL)
    wanted = {c.patient_id for candidates in found.values() for c in candidates}
    records = candidate_records(sorted(wanted))
    prepared = {}
    patients = {p.pk: p for p in Patient.all_objects.filter(pk__in=probes)}
    opened: dict[frozenset, object] = {}
    fresh: list[MatchCandidate] = []
    frequencies = batch_term_frequencies(probes)
    for pid, probe in probes.items():
        tf = frequencies[pid]
        prepared_probe = model.prepare(probe)
        outcomes = []
        for candidate in found[pid]:
            if candidate.patient_id not in records:
                continue
            other_uuid, other = records[candidate.patient_id]
            if candidate.patient_id not in prepared:
                prepared[candidate.patient_id] = model.prepare(other)
            result = model.match(prepared_probe, prepared[candidate.patient_id], tf=tf)
            if GRADE_RANK[result.grade] >= floor:
                outcomes.append(MatchOutcome(candidate.patient_id, other_uuid, result, candidate.blocks))
        outcomes.sort(key=lambda o: (-o.probability, o.patient_id))
        patient = patients[pid]
        still = set()
        for outcome in outcomes[:CANDIDATE_POOL]:
            still.add(outcome.patient_id)
            if outcome.patient_id not in probes:
                # A patient from before this batch: the pair cannot exist yet.
                fresh.append(new_candidate(patient=patient, outcome=outcome, version=version))
                continue
            candidate = record_candidate(patient=patient, outcome=outcome, version=version, actor=actor)
            if candidate is not None:
                opened[frozenset((pid, outcome.patient_id))] = candidate
        # The only open candidates a new patient can have are those this batch opened.
        for pair, candidate in list(opened.items()):
            if (
                pid in pair
                and (set(pair) - {pid}).pop() not in still
                and candidate.status == CandidateStatus.OPEN
            ):
                note = "Closed by the matcher: no longer a likely match after a change."
                close_candidate(candidate, actor=actor, note=note)
    insert_with_history(fresh, MatchCandidate, user=actor, reason=OPENED)
    return len(fresh) + sum(c.status == CandidateStatus.OPEN for c in opened.values())
