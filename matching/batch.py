"""Batch duplicate detection over the whole index (``manage.py find_duplicates``).

The same retrieval and scoring as ``services.match_patient``, turned inside out:

1. ``matching.pairs.build_pairs`` generates the candidate pairs of the whole index in
   SQL, from the blocks of ``search.blocking`` (see that module for the per-key cap).
2. Pairs are taken in chunks of patient ids (``a`` of the pair ``a < b``, ascending).
   A worker loads the chunk's patients with ``patients.queries.load_patient_data``,
   prepares each record once, and scores every pair with the active model and the
   whole ``NameFrequency`` table as term frequencies (the numbers
   ``services.term_frequencies`` gives a probe).
3. The parent writes the pairs at ``possible`` or above through
   ``services.record_candidate`` (``changed=False``: decided pairs stay decided), one
   transaction per chunk, then records the last finished patient id in the checkpoint.

The checkpoint is a small JSON file (default ``var/find_duplicates-<database>.json``),
written after each chunk's commit and removed when a pass completes. A run that finds
one resumes after its patient id: every pair belongs to the chunk of its lower id, so
no pair is scored twice (unless the run stopped between a commit and the checkpoint
write: that one chunk is scored again, which only refreshes the same rows).

Workers are forked processes (the database connections are closed first; each child
opens its own). Each keeps the prepared records of recent chunks (an LRU of
``cache_size``): a patient is often the ``b`` of pairs in several chunks.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from matching import pairs as pair_sql
from matching.frequencies import frequencies_missing, load_term_frequencies, refresh_name_frequencies
from matching.model import MatchGrade, MatchModel
from matching.models import MatchCandidate, MatchModelVersion
from matching.prepare import PreparedRecord
from matching.services import GRADE_RANK, MatchOutcome, active_matcher, record_candidate
from patients.models import Patient
from patients.queries import load_patient_data

DEFAULT_CHUNK_PATIENTS = 2000
DEFAULT_CACHE_SIZE = 100_000
GRADES = (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE, MatchGrade.CERTAINLY_NOT)
_FLOOR = GRADE_RANK[MatchGrade.POSSIBLE]


def default_checkpoint_path() -> Path:
    return Path(settings.BASE_DIR) / "var" / f"find_duplicates-{connection.settings_dict['NAME']}.json"


@dataclass
class Totals:
    """What a pass did so far; kept in the checkpoint so a resumed pass reports it all."""

    pairs_generated: int = 0
    pairs_scored: int = 0
    chunks: int = 0
    scored: dict[str, int] = field(default_factory=dict)  # grade -> pairs
    opened: dict[str, int] = field(default_factory=dict)  # grade -> new candidates
    refreshed: dict[str, int] = field(default_factory=dict)  # grade -> open candidates re-scored
    kept_decided: int = 0  # pairs >= possible whose candidate was already decided
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    def add(self, counter: dict, key: str, n: int = 1) -> None:
        counter[key] = counter.get(key, 0) + n

    def time(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + seconds, 3)

    @classmethod
    def from_dict(cls, data: dict) -> Totals:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class Checkpoint:
    """The last patient id whose pairs are all written, in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"Cannot read the checkpoint {self.path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("last_patient_id"), int):
            raise CheckpointError(f"{self.path} is not a find_duplicates checkpoint.")
        return data

    def save(self, *, last_patient_id: int, model_version: int, window: int, totals: Totals) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "database": connection.settings_dict["NAME"],
            "last_patient_id": last_patient_id,
            "model_version": model_version,
            "window": window,
            "updated_at": timezone.now().isoformat(),
            "totals": asdict(totals),
        }
        # Written aside and renamed: a crash mid-write never leaves half a file.
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class CheckpointError(Exception):
    pass


@dataclass
class ChunkResult:
    last_a: int
    scored: int
    grades: Counter
    found: list  # (a, b, blocks, MatchResult) at possible or above
    seconds: float


# -- the worker side (also run in-process when workers <= 1) -------------------------
_state: dict = {}


def _set_scoring_state(model: MatchModel, tf: dict, cache_size: int) -> None:
    _state.update(model=model, tf=tf, cache=OrderedDict(), cache_size=cache_size)


def _prepared(ids: list[int]) -> dict[int, PreparedRecord]:
    cache: OrderedDict = _state["cache"]
    out, missing = {}, []
    for pid in ids:
        record = cache.get(pid)
        if record is None:
            missing.append(pid)
        else:
            cache.move_to_end(pid)
            out[pid] = record
    if missing:
        model = _state["model"]
        for pid, data in load_patient_data(missing).items():
            out[pid] = cache[pid] = model.prepare(data)
        while len(cache) > _state["cache_size"]:
            cache.popitem(last=False)
    return out


def score_chunk(pairs: list[tuple[int, int, tuple[str, ...]]]) -> ChunkResult:
    started = time.perf_counter()
    model, tf = _state["model"], _state["tf"]
    prepared = _prepared(sorted({p for a, b, _ in pairs for p in (a, b)}))
    grades: Counter = Counter()
    found = []
    for a, b, blocks in pairs:
        pa, pb = prepared.get(a), prepared.get(b)
        if pa is None or pb is None:
            continue  # deleted since the pairs were generated
        result = model.match(pa, pb, tf=tf)
        grades[result.grade.value] += 1
        if GRADE_RANK[result.grade] >= _FLOOR:
            found.append((a, b, blocks, result))
    return ChunkResult(
        last_a=pairs[-1][0],
        scored=sum(grades.values()),
        grades=grades,
        found=found,
        seconds=time.perf_counter() - started,
    )


def _ignore_interrupts() -> None:
    # Ctrl-C goes to the whole process group: only the parent handles it (it stops
    # after the last committed chunk and terminates the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- the parent side -------------------------------------------------------------------
def write_chunk(result: ChunkResult, *, version: MatchModelVersion, totals: Totals) -> None:
    """Open/refresh the chunk's candidates through ``record_candidate``, in one transaction."""
    if not result.found:
        return
    ids = {p for a, b, _, _ in result.found for p in (a, b)}
    patients = Patient.all_objects.only("id", "uuid").in_bulk(ids)
    lows = {a for a, _, _, _ in result.found}
    existing = set(
        MatchCandidate.objects.filter(patient_a_id__in=lows).values_list("patient_a_id", "patient_b_id")
    )
    with transaction.atomic():
        for a, b, blocks, match in result.found:
            if a not in patients or b not in patients:
                continue
            outcome = MatchOutcome(b, patients[b].uuid, match, blocks)
            candidate = record_candidate(patient=patients[a], outcome=outcome, version=version, changed=False)
            grade = match.grade.value
            if candidate is None:
                totals.kept_decided += 1
            elif (a, b) in existing:
                totals.add(totals.refreshed, grade)
            else:
                totals.add(totals.opened, grade)


@dataclass(frozen=True)
class BatchOptions:
    window: int = pair_sql.DEFAULT_WINDOW
    chunk_patients: int = DEFAULT_CHUNK_PATIENTS
    workers: int = 2
    cache_size: int = DEFAULT_CACHE_SIZE
    limit_chunks: int | None = None


def prepare_scoring(*, log: Callable[[str], None]) -> tuple[MatchModelVersion, MatchModel, dict]:
    """The active model and the whole term-frequency table (counted first if empty)."""
    if frequencies_missing():
        stats = refresh_name_frequencies()
        log(f"Name frequencies were empty: counted {stats.patients:,} patients in {stats.seconds:.1f} s.")
    version, model = active_matcher()
    return version, model, load_term_frequencies()


def run_batch(
    *,
    checkpoint: Checkpoint,
    options: BatchOptions,
    log: Callable[[str], None],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[Totals, bool]:
    """One pass (or the rest of an interrupted one). Returns (totals, complete)."""
    saved = checkpoint.load()
    version, model, tf = prepare_scoring(log=log)
    after, totals = 0, Totals()
    if saved is not None:
        database = connection.settings_dict["NAME"]
        if saved.get("database", database) != database:
            raise CheckpointError(
                f"The checkpoint {checkpoint.path} belongs to the database {saved['database']!r}, "
                f"not {database!r}; use another --checkpoint or --restart."
            )
        if saved.get("model_version") != version.version:
            raise CheckpointError(
                f"The checkpoint {checkpoint.path} was made with match model v{saved.get('model_version')}, "
                f"but v{version.version} is active now; run with --restart to start a new pass."
            )
        after, totals = saved["last_patient_id"], Totals.from_dict(saved.get("totals", {}))
        log(f"Resuming after patient id {after} ({totals.pairs_scored:,} pairs scored before).")
    _set_scoring_state(model, tf, options.cache_size)

    pool = None
    if options.workers > 1:
        # Fork before this process opens the connection that holds the temporary
        # pair table: the children must not share it.
        connections.close_all()
        context = multiprocessing.get_context("fork")
        pool = context.Pool(options.workers, initializer=_ignore_interrupts)
    try:
        phase = time.perf_counter()
        stats = pair_sql.build_pairs(window=options.window, after=after)
        totals.time("pairs_sql", time.perf_counter() - phase)
        totals.pairs_generated = totals.pairs_scored + stats.pairs
        log(f"{stats.pairs:,} candidate pairs to score, generated in {stats.seconds:.1f} s.")
        complete = _score_all(pool, after, stats.pairs, checkpoint, options, version, totals, progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        pair_sql.drop_pairs()
    if complete:
        checkpoint.clear()
    return totals, complete


def _score_all(pool, after, total, checkpoint, options, version, totals, progress) -> bool:
    pending: deque = deque()
    submitted, exhausted, done = 0, False, 0
    in_flight = 2 * max(1, options.workers)
    last = time.perf_counter()
    while True:
        while not exhausted and len(pending) < (in_flight if pool else 1):
            if options.limit_chunks is not None and submitted >= options.limit_chunks:
                exhausted = True
                break
            chunk = pair_sql.pair_chunk(after=after, patients=options.chunk_patients)
            if not chunk:
                exhausted = True
                break
            after = chunk[-1][0]
            submitted += 1
            pending.append(pool.apply_async(score_chunk, (chunk,)) if pool else chunk)
        if not pending:
            break
        item = pending.popleft()
        if pool:
            while not item.ready():
                item.wait(0.5)  # short waits: Ctrl-C reaches this process at once
            result = item.get()
        else:
            result = score_chunk(item)
        write_started = time.perf_counter()
        write_chunk(result, version=version, totals=totals)
        totals.time("writing", time.perf_counter() - write_started)
        totals.pairs_scored += result.scored
        totals.chunks += 1
        # Summed over the workers: load + prepare + score, without the waits.
        totals.time("worker_load_and_score", result.seconds)
        # Added per chunk, so an interrupted run's time is in the checkpoint too.
        now = time.perf_counter()
        totals.time("scoring_and_writing", now - last)
        last = now
        for grade, n in result.grades.items():
            totals.add(totals.scored, grade, n)
        checkpoint.save(
            last_patient_id=result.last_a, model_version=version.version, window=options.window, totals=totals
        )
        done += result.scored
        progress(done, total)
    # Complete only when every chunk was taken, not when --limit-chunks stopped it.
    return options.limit_chunks is None or not pair_sql.pair_chunk(after=after, patients=1)
