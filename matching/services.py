"""Match services: score a probe against the registry, and keep the candidate queue.

``match_patient`` is what the REST and FHIR match endpoints call: candidate
retrieval through ``search.blocking``, field-by-field scoring with the active match
model, ranked by probability. ``refresh_candidates_for`` runs inside every patient
write (the ``patient_changed`` receiver in matching/apps.py) and opens or refreshes
``MatchCandidate`` rows at ``possible`` or above.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.services import record as audit_record
from matching.model import MatchGrade, MatchModel, MatchResult
from matching.models import CandidateStatus, MatchCandidate, MatchModelVersion, NameFrequency
from matching.params import MatchParams
from matching.prefilter import staged_reject_for
from matching.prepare import family_tf_key, given_tf_key
from patients.codes import LinkType
from patients.data import PatientData
from patients.inserts import create_with_history
from patients.models import Link, Patient
from patients.queries import load_patient_data
from patients.retry import retry_on_conflict
from search.blocking import find_candidate_records
from search.models import PatientIndex

# Candidates retrieved per probe before scoring; the blocks rank them, so the true
# record is near the top when it is there at all.
CANDIDATE_POOL = 50
GRADE_RANK = {
    MatchGrade.CERTAIN: 3,
    MatchGrade.PROBABLE: 2,
    MatchGrade.POSSIBLE: 1,
    MatchGrade.CERTAINLY_NOT: 0,
}
MIN_POPULATION = 10_000
# How long a process keeps a parsed model (and the index size it was made for).
MODEL_TTL_SECONDS = 30.0

_matching_enabled = contextvars.ContextVar("matching_enabled", default=True)
_cache: dict[str, tuple[float, object]] = {}


@contextmanager
def matching_disabled() -> Iterator[None]:
    """Writes inside this block do not match (initial bulk loads: run find_duplicates after)."""
    token = _matching_enabled.set(False)
    try:
        yield
    finally:
        _matching_enabled.reset(token)


def matching_enabled() -> bool:
    return _matching_enabled.get()


def index_population(*, exact: bool = False) -> int:
    """The number of index rows, which the prior follows: the planner's estimate, or
    with ``exact`` a count.

    A match takes the estimate (``pg_class.reltuples``; a count is a scan of the
    index). A batch pass counts (a fraction of a second at a million rows, once a
    pass): the estimate is re-sampled by every ANALYZE, autovacuum's included, and
    moves by a percent or so, so two passes over the same data graded a few hundred
    of 88,000 pairs near a threshold differently (docs/bench.md); counted, the same
    data gives the same grades.

    Never below ``MIN_POPULATION``: a young registry of a few hundred records must not
    make the matcher more eager to match (nor make a pair's grade depend on how many
    patients a test happens to create).
    """
    table = PatientIndex._meta.db_table
    with connection.cursor() as cursor:
        if exact:
            cursor.execute(f"SELECT count(*) FROM {table}")
        else:
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
        row = cursor.fetchone()
    found = int(row[0]) if row and row[0] and row[0] > 0 else 0
    return max(found, MIN_POPULATION)


def active_matcher() -> tuple[MatchModelVersion, MatchModel]:
    """The active stored model version, and a MatchModel for it.

    The version row is read on every call (one indexed row: a newly activated model
    takes effect at once and a rolled-back one is never used); the parsed model is
    kept per version for a while, since its prior follows the index size.
    """
    # Without the parameters: parsing their JSON on every request would cost more than
    # the query; they are read when the model is (re)built. Written out, not compiled
    # by the ORM on every match (one active version: a unique partial index).
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVE_VERSION)
        row = cursor.fetchone()
    if row is not None:
        version = MatchModelVersion.from_db(connection.alias, ["id", "version", "active"], [*row, True])
    else:
        version = _fallback_version()
    key = f"model:{version.pk}:{version.version}"
    cached = _cache.get(key)
    if cached and time.monotonic() - cached[0] < MODEL_TTL_SECONDS:
        return version, cached[1]
    params = MatchModelVersion.objects.values_list("params", flat=True).get(pk=version.pk)
    model = MatchModel(MatchParams.from_dict(params), population=index_population())
    _cache[key] = (time.monotonic(), model)
    return version, model


_ACTIVE_VERSION = f"SELECT id, version FROM {MatchModelVersion._meta.db_table} WHERE active"


def _fallback_version() -> MatchModelVersion:
    """No active version: the newest one, or the shipped defaults on an empty table
    (migration 0002 stores them; a flushed test database has lost them)."""
    from matching.defaults import DEFAULT_PARAMS

    newest = MatchModelVersion.objects.order_by("-version").first()
    if newest is not None:
        return newest
    version, _ = MatchModelVersion.objects.get_or_create(
        version=1,
        defaults={"params": DEFAULT_PARAMS.to_dict(), "active": True, "notes": "The shipped defaults."},
    )
    return version


def forget_cached_matcher() -> None:
    _cache.clear()


_FREQUENCIES = (
    f"SELECT kind, key, count FROM {NameFrequency._meta.db_table}"
    f" WHERE (kind = '{NameFrequency.Kind.FAMILY.value}' AND key = ANY(%(family)s::text[]))"
    f" OR (kind = '{NameFrequency.Kind.GIVEN.value}' AND key = ANY(%(given)s::text[]))"
)


def frequency_counts(*, family, given) -> dict[tuple[str, str], int]:
    """``{(kind, key): count}`` of these family and given name keys, plus each kind's
    total (key ``""``). By (kind, key), the unique index's order: on key alone
    PostgreSQL scanned the whole table (15 ms at a million patients, more than the
    candidate search). Written out rather than compiled by the ORM on every match."""
    with connection.cursor() as cursor:
        cursor.execute(_FREQUENCIES, {"family": [*family, ""], "given": [*given, ""]})
        return {(kind, key): count for kind, key, count in cursor.fetchall()}


def term_frequencies(probe: PatientData) -> dict[str, dict[str, float]]:
    """Relative frequencies of the name keys the probe can agree on exactly.

    An exact agreement means the candidate carries the probe's own key, so the
    probe's keys are all that is needed: one small query per probe.
    """
    wanted = {
        NameFrequency.Kind.FAMILY: {family_tf_key(n.family) for n in probe.names if n.family},
        NameFrequency.Kind.GIVEN: {given_tf_key(n.given) for n in probe.names if n.given},
    }
    counts: dict[str, dict[str, int]] = {"family": {}, "given": {}}
    for (kind, key), count in frequency_counts(
        family=wanted[NameFrequency.Kind.FAMILY], given=wanted[NameFrequency.Kind.GIVEN]
    ).items():
        counts[kind][key] = count
    tf: dict[str, dict[str, float]] = {}
    for kind, values in counts.items():
        total = values.pop("", 0)
        if total > 0:
            tf[kind] = {key: count / total for key, count in values.items()}
    return tf


@dataclass(frozen=True)
class MatchOutcome:
    patient_id: int
    patient_uuid: UUID
    result: MatchResult
    blocks: tuple[str, ...]

    @property
    def probability(self) -> float:
        return self.result.probability

    @property
    def grade(self) -> MatchGrade:
        return self.result.grade

    def evidence_json(self, *, swap: bool = False) -> dict:
        """The explanation as stored on a candidate; ``swap`` puts the candidate's values first."""
        data = self.result.to_dict()
        if swap:
            for item in data["evidence"]:
                item["value_a"], item["value_b"] = item["value_b"], item["value_a"]
        data["blocks"] = list(self.blocks)
        return data


def match_patient(
    probe: PatientData,
    *,
    limit: int = 10,
    min_grade: str = MatchGrade.POSSIBLE,
    exclude: int | None = None,
    matcher: tuple[MatchModelVersion, MatchModel] | None = None,
) -> list[MatchOutcome]:
    """Patients that may be the person described by ``probe``, most likely first.

    Nothing is written. ``exclude`` leaves out one patient id (the probe's own record).
    ``matcher``: the ``active_matcher()`` the caller already read (one query less).
    """
    floor = GRADE_RANK[MatchGrade(min_grade)]
    _, model = matcher or active_matcher()
    candidates = find_candidate_records(probe, limit=CANDIDATE_POOL, exclude=exclude)
    if not candidates:
        return []
    tf = term_frequencies(probe)
    prepared_probe = model.prepare(probe)
    # Below ``possible`` nothing is returned, so a candidate the staged bound proves
    # certainly-not is not scored in full (most of the pool: the blocks are wide).
    rejects = staged_reject_for(model, tf).rejects if floor >= GRADE_RANK[MatchGrade.POSSIBLE] else None
    outcomes = []
    for candidate, uuid, data in candidates:
        prepared = model.prepare(data)
        if rejects is not None and rejects(prepared_probe, prepared):
            continue
        result = model.match(prepared_probe, prepared, tf=tf)
        if GRADE_RANK[result.grade] >= floor:
            outcomes.append(MatchOutcome(candidate.patient_id, uuid, result, candidate.blocks))
    outcomes.sort(key=lambda o: (-o.probability, o.patient_id))
    return outcomes[: max(0, limit)]


def _changed_fields(old_evidence: dict, new_evidence: dict) -> list[str]:
    """Fields whose level or compared values differ between two explanations."""

    def values(evidence: dict) -> dict[str, tuple]:
        return {
            e["field"]: (e["level"], frozenset((e["value_a"], e["value_b"])))
            for e in evidence.get("evidence", [])
        }

    old, new = values(old_evidence), values(new_evidence)
    return sorted(f for f in new.keys() | old.keys() if old.get(f) != new.get(f))


def _save(candidate: MatchCandidate, actor, reason: str) -> None:
    candidate._history_user = actor
    candidate._change_reason = reason
    candidate.save()


def close_candidates_on_retired(patient_ids) -> int:
    """Dismiss open candidates that involve one of these patients and a retired record.

    The backstop for a race no lock order prevents: a write matches against a partner
    while a merge or delete of that partner is in flight; each transaction sees the
    other's rows only once committed, so the write may open a pair the merge could not
    see to close. Both sides call this right after they commit (``on_commit``): whichever
    commits second sees the other's rows and closes the pair. It takes no lock inside the
    writing transactions, so it cannot deadlock them.
    """
    ids = sorted(set(patient_ids))
    if not ids:
        return 0
    stale = (
        MatchCandidate.objects.open()
        .filter(Q(patient_a_id__in=ids) | Q(patient_b_id__in=ids))
        .filter(
            Q(patient_a__deleted_at__isnull=False)
            | Q(patient_b__deleted_at__isnull=False)
            | Exists(Link.all_objects.filter(patient=OuterRef("patient_a"), type=LinkType.REPLACED_BY))
            | Exists(Link.all_objects.filter(patient=OuterRef("patient_b"), type=LinkType.REPLACED_BY))
        )
        .order_by("pk")
    )
    if not stale.exists():  # the usual case: one read, no transaction
        return 0
    closed = 0
    with transaction.atomic():
        for candidate in stale.select_for_update(of=("self",)):
            close_candidate(candidate, note="Closed: one of the patients was merged away or deleted.")
            closed += 1
    return closed


OPENED = "Opened by the matcher"  # the history reason of a pair the matcher opens
RESCORED = "Re-scored by the matcher"
# What a (re-)score sets on a candidate.
SCORE_FIELDS = ("probability", "weight", "grade", "evidence", "blocks", "model_version")


def rescore(candidate: MatchCandidate, values: dict) -> bool:
    """Give an open candidate a new score (``SCORE_FIELDS``) and clear its note; False,
    changing nothing, when it has that score already and no note.

    Re-scoring a pair whose records did not change gives the same score, and writing
    it would only add a "Re-scored" version with no difference to the candidate's
    history: a nightly ``find_duplicates`` did that for every open candidate (88,000
    history rows and ~3 minutes of a pass at a million patients).
    """
    if not candidate.note and all(_stored(candidate, f) == _stored_form(f, v) for f, v in values.items()):
        return False
    for name, value in values.items():
        setattr(candidate, name, value)
    candidate.note = ""
    return True


def _stored(candidate: MatchCandidate, field: str):
    return candidate.model_version_id if field == "model_version" else getattr(candidate, field)


def _stored_form(field: str, value):
    """``value`` as the candidate's field reads back from the database."""
    if field == "model_version":
        return value.pk
    if field in ("evidence", "blocks"):
        return json.loads(json.dumps(value))  # tuples become lists, as in jsonb
    return value


def new_candidate(*, patient: Patient, outcome: MatchOutcome, version) -> MatchCandidate:
    """The candidate ``record_candidate`` opens for a pair it has never seen (unsaved)."""
    low, high = sorted((patient.pk, outcome.patient_id))
    return MatchCandidate(
        patient_a_id=low,
        patient_b_id=high,
        probability=outcome.probability,
        weight=outcome.result.weight,
        grade=outcome.grade,
        evidence=outcome.evidence_json(swap=patient.pk != low),
        blocks=list(outcome.blocks),
        model_version=version,
    )


def record_candidate(
    *,
    patient: Patient,
    outcome: MatchOutcome,
    version: MatchModelVersion,
    actor=None,
    changed: bool = True,
) -> MatchCandidate | None:
    """Open or refresh the candidate for (patient, outcome's patient).

    A decided pair stays decided, unless ``changed`` (this write changed the patient)
    and a compared field's values differ from what the decision saw: then it is
    re-opened with a note saying which fields changed.
    """
    candidate = new_candidate(patient=patient, outcome=outcome, version=version)
    low, high, evidence = candidate.patient_a_id, candidate.patient_b_id, candidate.evidence
    values = {f: getattr(candidate, f) for f in SCORE_FIELDS}
    existing = MatchCandidate.objects.select_for_update().filter(patient_a_id=low, patient_b_id=high).first()
    if existing is None:
        try:
            with transaction.atomic():
                _save(candidate, actor, OPENED)
                return candidate
        except IntegrityError:
            # A concurrent write opened the same pair first: refresh theirs.
            existing = MatchCandidate.objects.select_for_update().get(patient_a_id=low, patient_b_id=high)
    if existing.status == CandidateStatus.OPEN:
        if rescore(existing, values):
            _save(existing, actor, RESCORED)
        return existing
    if existing.status not in (CandidateStatus.NOT_DUPLICATE, CandidateStatus.DISMISSED) or not changed:
        return None  # merged/linked pairs are settled; unchanged pairs stay decided
    fields = _changed_fields(existing.evidence, evidence)
    if not fields:
        return None
    previous = f"{existing.get_status_display().lower()} on {existing.decided_at:%Y-%m-%d}"
    for field, value in values.items():
        setattr(existing, field, value)
    existing.status = CandidateStatus.OPEN
    existing.note = f"Re-opened: {', '.join(fields)} changed since it was decided {previous}."
    _save(existing, actor, existing.note)
    return existing


def refresh_candidates_for(
    patient: Patient, *, actor=None, changed: bool = True, new: bool = False, data: PatientData | None = None
) -> list[MatchCandidate]:
    """Match a stored patient against the registry and open/refresh its candidates.

    Open candidates of this patient that no longer reach ``possible`` are dismissed
    with a note (by the system, not a person). ``new``: the patient was registered in
    this transaction, so no candidate row can involve it yet (no other transaction
    can see it): nothing to lock, refresh or close, only pairs to open. ``data``: the
    patient as it reads back (a registration's or an update's signal carries it), else
    it is read.
    """
    matcher = active_matcher()
    version = matcher[0]
    if data is None:
        data = load_patient_data([patient.pk]).get(patient.pk)
        if data is None:
            return []
    outcomes = match_patient(
        data, limit=CANDIDATE_POOL, min_grade=MatchGrade.POSSIBLE, exclude=patient.pk, matcher=matcher
    )
    partners = [o.patient_id for o in outcomes]
    transaction.on_commit(lambda: close_candidates_on_retired(partners), robust=True)
    outcomes = sorted(outcomes, key=lambda o: o.patient_id)
    if new:  # one statement for the pairs and their history
        fresh = [new_candidate(patient=patient, outcome=o, version=version) for o in outcomes]
        create_with_history(fresh, user=actor, reason=OPENED)
        return fresh
    # Lock this patient's candidate rows in one sweep in key order, then write pairs in
    # the other patient's key order: every writer (merges settle their candidates the
    # same way) takes candidate locks in one order, so concurrent writers cannot deadlock.
    list(MatchCandidate.objects.involving(patient).select_for_update().order_by("pk"))
    touched = []
    for outcome in outcomes:
        candidate = record_candidate(
            patient=patient, outcome=outcome, version=version, actor=actor, changed=changed
        )
        if candidate is not None:
            touched.append(candidate)
    still = {o.patient_id for o in outcomes}
    for stale in MatchCandidate.objects.open().involving(patient).order_by("pk"):
        if stale.other(patient) not in still:
            close_candidate(
                stale, actor=actor, note="Closed by the matcher: no longer a likely match after a change."
            )
    return touched


def close_candidate(candidate: MatchCandidate, *, actor=None, note: str) -> None:
    """The system dismisses an open candidate (a patient changed, was deleted or merged)."""
    candidate.status = CandidateStatus.DISMISSED
    candidate.decided_at = timezone.now()
    candidate.decided_by = None
    candidate.note = note
    _save(candidate, actor, note)


def on_patient_changed(
    sender, *, patient: Patient, action: str, actor=None, data: PatientData | None = None, **kwargs
) -> None:
    """``patient_changed`` receiver: registration and updates match in the same request
    (with the data the write sent: not read back)."""
    if not matching_enabled():
        return
    if action in ("registered", "updated", "restored"):
        refresh_candidates_for(
            patient,
            actor=actor,
            changed=action != "restored",
            new=action == "registered",
            data=data,
        )
    elif action == "deleted":
        for candidate in MatchCandidate.objects.open().involving(patient).select_for_update().order_by("pk"):
            close_candidate(candidate, actor=actor, note="Closed: one of the patients was deleted.")
    if action in ("deleted", "merged"):
        # Pairs opened meanwhile by writes this one could not see (close_candidates_on_retired).
        retired = patient.pk
        transaction.on_commit(lambda: close_candidates_on_retired([retired]), robust=True)


@retry_on_conflict
@transaction.atomic
def decide_candidate(*, candidate: MatchCandidate, status: str, actor, reason: str) -> MatchCandidate:
    """Record a steward's decision (not-duplicate, dismissed) on an open or decided pair.

    Merges and links set their own statuses through their services.
    """
    from django.core.exceptions import ValidationError

    if status not in (CandidateStatus.NOT_DUPLICATE, CandidateStatus.DISMISSED):
        raise ValidationError({"status": f"Use the merge or link service for {status!r}."})
    if status == CandidateStatus.NOT_DUPLICATE and not reason.strip():
        raise ValidationError({"reason": "Say why these are different people."})
    candidate = MatchCandidate.objects.select_for_update().get(pk=candidate.pk)
    candidate.status = status
    candidate.decided_by = actor
    candidate.decided_at = timezone.now()
    candidate.reason = reason.strip()
    candidate.note = ""
    _save(candidate, actor, reason.strip() or f"Marked {status}")
    pair = Patient.all_objects.filter(pk__in=[candidate.patient_a_id, candidate.patient_b_id])
    audit_record(
        action="decide",
        patients=pair.values_list("uuid", flat=True),
        actor=actor,
        detail={"candidate": str(candidate.pk), "decision": status},
    )
    return candidate


def mark_not_duplicate(*, candidate: MatchCandidate, actor, reason: str) -> MatchCandidate:
    """A sticky "different people" decision: the matcher never re-opens it on its own."""
    return decide_candidate(
        candidate=candidate, status=CandidateStatus.NOT_DUPLICATE, actor=actor, reason=reason
    )


def dismiss_candidate(*, candidate: MatchCandidate, actor, reason: str = "") -> MatchCandidate:
    return decide_candidate(candidate=candidate, status=CandidateStatus.DISMISSED, actor=actor, reason=reason)
