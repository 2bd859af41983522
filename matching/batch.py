"""Batch duplicate detection over the whole index (``manage.py find_duplicates``).

The same retrieval and scoring as ``services.match_patient``, turned inside out:

1. ``matching.pairs.build_pairs`` generates the candidate pairs of the whole index in
   SQL, from the blocks of ``search.blocking`` (see that module for the per-key cap).
   Meanwhile a thread loads and prepares every live patient once
   (``matching.batch_records``): the SQL keeps PostgreSQL's core busy, the thread the
   other one. (With ``workers <= 1`` both run in turn, in this thread's transaction.)
2. Worker processes, forked once the records are prepared (they share them
   copy-on-write, and never touch the database), score the pairs in chunks of patient
   ids (``a`` of the pair ``a < b``, ascending): drop the pair as soon as
   ``prefilter.StagedReject`` proves it ``certainly-not`` from the fields compared so
   far (95-99% of the pairs, most of them before their addresses are compared), then
   compare the rest in full and score them with the active model and the whole
   ``NameFrequency`` table as term frequencies (the numbers
   ``services.term_frequencies`` gives a probe).
3. The parent writes each chunk in one transaction (``batch_writes``: bulk writes with
   history; decided pairs stay decided, open ones are re-scored, open ones scored
   below possible are closed), then records the last finished patient id in the
   checkpoint; with workers, in a thread of its own (``_ChunkWriter``), while the
   parent reads the next chunks' pairs.

The checkpoint is a small JSON file (default ``var/find_duplicates-<database>.json``),
written after each chunk's commit and removed when a pass completes. A run that finds
one resumes after its patient id: every pair belongs to the chunk of its lower id, so
no pair is scored twice (unless the run stopped between a commit and the checkpoint
write: that one chunk is scored again, which only refreshes the same rows).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from matching import batch_records
from matching import pairs as pair_sql
from matching.batch_writes import write_chunk
from matching.frequencies import frequencies_missing, load_term_frequencies, refresh_name_frequencies
from matching.model import MatchGrade, MatchModel
from matching.models import MatchModelVersion
from matching.prefilter import StagedReject
from matching.services import GRADE_RANK, active_matcher, index_population

DEFAULT_CHUNK_PATIENTS = 2000
GRADES = (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE, MatchGrade.CERTAINLY_NOT)
_FLOOR = GRADE_RANK[MatchGrade.POSSIBLE]
_NOT = MatchGrade.CERTAINLY_NOT.value


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
    unchanged: int = 0  # of those, scored as stored already (not written)
    kept_decided: int = 0  # pairs >= possible whose candidate was already decided
    closed: int = 0  # open candidates scored below possible, dismissed
    rejected_early: int = 0  # pairs the weight bound proved certainly-not
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
    scored: list  # (a, b) of every pair scored, any grade
    grades: Counter
    rejected_early: int
    found: list  # (a, b, blocks, MatchResult) at possible or above
    seconds: float
    cpu: float  # the worker's CPU time: ``seconds`` less the time other processes had the core


# -- the worker side (also run in-process when workers <= 1) -------------------------
# Set before the workers fork, so they inherit it (the records copy-on-write).
_state: dict = {}


def score_chunk(pairs: list[tuple[int, int, tuple[str, ...]]]) -> ChunkResult:
    started, cpu = time.perf_counter(), time.process_time()
    model, tf, records = _state["model"], _state["tf"], _state["records"]
    compare, score, rejects = model.compare, model.score, _state["staged"].rejects
    grades: Counter = Counter()
    found, scored, rejected = [], [], 0
    for a, b, blocks in pairs:
        pa, pb = records.get(a), records.get(b)
        if pa is None or pb is None:
            continue  # deleted (or registered) since the records were prepared
        scored.append((a, b))
        if rejects(pa, pb):
            rejected += 1
            grades[_NOT] += 1
            continue
        result = score(compare(pa, pb), tf=tf)
        grades[result.grade.value] += 1
        if GRADE_RANK[result.grade] >= _FLOOR:
            found.append((a, b, blocks, result))
    return ChunkResult(
        last_a=pairs[-1][0],
        scored=scored,
        grades=grades,
        rejected_early=rejected,
        found=found,
        seconds=time.perf_counter() - started,
        cpu=time.process_time() - cpu,
    )


def _ignore_interrupts() -> None:
    # Ctrl-C goes to the whole process group: only the parent handles it (it stops
    # after the last committed chunk and terminates the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- the parent side -------------------------------------------------------------------
@dataclass(frozen=True)
class BatchOptions:
    window: int = pair_sql.DEFAULT_WINDOW
    chunk_patients: int = DEFAULT_CHUNK_PATIENTS
    workers: int = 2
    limit_chunks: int | None = None


def prepare_scoring(*, log: Callable[[str], None]) -> tuple[MatchModelVersion, MatchModel, dict]:
    """The active model, for the index size counted (so that the same data is graded
    the same, pass after pass: ``services.index_population``), and the whole
    term-frequency table (counted first if empty)."""
    if frequencies_missing():
        stats = refresh_name_frequencies()
        log(f"Name frequencies were empty: counted {stats.patients:,} patients in {stats.seconds:.1f} s.")
    version, model = active_matcher()
    model = MatchModel(model.params, population=index_population(exact=True))
    return version, model, load_term_frequencies()


class _Preparer(threading.Thread):
    """Loads and prepares every live patient while the pair SQL runs (own connection)."""

    def __init__(self) -> None:
        super().__init__(name="find_duplicates-prepare", daemon=True)
        self.records: dict = {}
        self.seconds: dict[str, float] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # Freezing after each range keeps the garbage collector's full passes off
            # the records prepared so far (run_batch unfreezes at the end).
            self.records, self.seconds = batch_records.prepare_all(progress=lambda n: gc.freeze())
        except BaseException as exc:  # re-raised in the parent thread
            self.error = exc
        finally:
            if threading.current_thread() is self:
                connection.close()  # this thread's own connection


def _pairs_and_records(options: BatchOptions, after: int, totals: Totals, log) -> tuple[int, dict]:
    """Build the pair table and prepare the records; concurrently when workers > 1."""
    preparer = _Preparer()
    started = time.perf_counter()
    if options.workers > 1:
        # Another connection cannot see uncommitted rows: the single-process mode
        # (and the tests, which run inside a transaction) prepares in this thread.
        preparer.start()
    stats = pair_sql.build_pairs(window=options.window, after=after)
    totals.time("pairs_sql", stats.seconds)
    log(f"{stats.pairs:,} candidate pairs to score, generated in {stats.seconds:.1f} s.")
    if options.workers > 1:
        preparer.join()
    else:
        preparer.run()
    if preparer.error is not None:
        raise preparer.error
    for phase, name in (
        ("load", "load_records"),
        ("prepare", "prepare_records"),
        ("prepare_cpu", "prepare_records_cpu"),
    ):
        totals.time(name, preparer.seconds.get(phase, 0.0))
    totals.time("pairs_and_records", time.perf_counter() - started)
    log(
        f"{len(preparer.records):,} records loaded and prepared in "
        f"{preparer.seconds.get('load', 0) + preparer.seconds.get('prepare', 0):.1f} s "
        f"(alongside the pair SQL: {options.workers > 1})."
    )
    return stats.pairs, preparer.records


def run_batch(
    *,
    checkpoint: Checkpoint,
    options: BatchOptions,
    log: Callable[[str], None],
    progress: Callable[[int, int], None] = lambda done, total: None,
    on_pairs: Callable[[], None] | None = None,
) -> tuple[Totals, bool]:
    """One pass (or the rest of an interrupted one). Returns (totals, complete).

    ``on_pairs`` is called once the pair table exists (the benchmark counts planted
    pairs in it).
    """
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

    pool = None
    try:
        pairs, records = _pairs_and_records(options, after, totals, log)
        totals.pairs_generated = totals.pairs_scored + pairs
        if on_pairs is not None:
            on_pairs()
        _state.update(model=model, tf=tf, records=records, staged=StagedReject(model, tf))
        # Millions of long-lived objects: keep the cyclic garbage collector off them
        # (its passes would take longer than the scoring, and in the workers they
        # would write to every page the records share with this process).
        gc.collect()
        gc.freeze()
        if options.workers > 1:
            # The workers never use the database: they inherit this process's open
            # connection (with the temporary pair table) and leave it alone.
            context = multiprocessing.get_context("fork")
            pool = context.Pool(options.workers, initializer=_ignore_interrupts)
        complete = _score_all(pool, after, pairs, checkpoint, options, version, totals, progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        _state.clear()
        gc.unfreeze()
        pair_sql.drop_pairs()
    if complete:
        checkpoint.clear()
    return totals, complete


class _ChunkWriter:
    """Writes the scored chunks in order: the candidates in one transaction, the totals,
    then the checkpoint (so it never runs ahead of what is committed).

    With worker processes it runs in a thread of its own, with its own connection: the
    parent thread meanwhile reads the next chunks' pairs (the pair table is a temporary
    table only its connection sees) and hands them to the workers, where it used to wait
    for each write first. Started after the workers are forked (a fork copies only the
    forking thread). Otherwise it writes in the caller's thread and transaction.
    """

    def __init__(self, *, checkpoint, options, version, totals, progress, total) -> None:
        self.checkpoint, self.options, self.version, self.totals = checkpoint, options, version, totals
        self.progress, self.total, self.done = progress, total, 0
        self.last = time.perf_counter()
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=2)  # chunks scored, not yet written
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="find_duplicates-write", daemon=True)
        self._thread.start()

    def put(self, result: ChunkResult) -> None:
        if self._thread is None:
            self._write(result)
            return
        while True:  # short waits: a writer that failed is noticed, and Ctrl-C goes through
            if self.error is not None:
                raise self.error
            try:
                self._queue.put(result, timeout=0.5)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait until every chunk handed over is written."""
        if self._thread is not None:
            self.put(None)
            self._thread.join()
            self._thread = None
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop after the chunk being written (the checkpoint stays at the last commit)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    result = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if result is None:
                    break
                self._write(result)
        except BaseException as exc:  # re-raised in the parent thread
            self.error = exc
        finally:
            connection.close()  # this thread's own connection

    def _write(self, result: ChunkResult) -> None:
        totals = self.totals
        write_started, write_cpu = time.perf_counter(), time.thread_time()
        counts = write_chunk(scored=result.scored, found=result.found, version=self.version)
        totals.time("writing", time.perf_counter() - write_started)
        totals.time("writing_cpu", time.thread_time() - write_cpu)
        for grade, n in counts.opened.items():
            totals.add(totals.opened, grade, n)
        for grade, n in counts.refreshed.items():
            totals.add(totals.refreshed, grade, n)
        totals.unchanged += counts.unchanged
        totals.kept_decided += counts.kept_decided
        totals.closed += counts.closed
        totals.pairs_scored += len(result.scored)
        totals.rejected_early += result.rejected_early
        totals.chunks += 1
        # Summed over the workers: the staged reject, compare and score, without the waits.
        totals.time("scoring", result.seconds)
        totals.time("scoring_cpu", result.cpu)
        # Added per chunk, so an interrupted run's time is in the checkpoint too.
        now = time.perf_counter()
        totals.time("scoring_and_writing", now - self.last)
        self.last = now
        for grade, n in result.grades.items():
            totals.add(totals.scored, grade, n)
        self.checkpoint.save(
            last_patient_id=result.last_a,
            model_version=self.version.version,
            window=self.options.window,
            totals=totals,
        )
        self.done += len(result.scored)
        self.progress(self.done, self.total)


def _score_all(pool, after, total, checkpoint, options, version, totals, progress) -> bool:
    pending: deque = deque()
    submitted, exhausted = 0, False
    in_flight = 2 * max(1, options.workers)
    writer = _ChunkWriter(
        checkpoint=checkpoint, options=options, version=version, totals=totals, progress=progress, total=total
    )
    if pool:
        writer.start()
    try:
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
            writer.put(result)
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    # Complete only when every chunk was taken, not when --limit-chunks stopped it.
    return options.limit_chunks is None or not pair_sql.pair_chunk(after=after, patients=1)
