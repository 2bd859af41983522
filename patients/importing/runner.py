"""Running an import: batches through ``patients.bulk.write_batch``, the rejects file,
the checkpoint that makes an interrupted import resumable, and progress."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patients.bulk import COUNTERS, write_batch
from patients.importing.source import ImportFileError, SourceRecord

DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class ImportOptions:
    actor: Any = None
    reason: str = "Imported"
    batch_size: int = DEFAULT_BATCH_SIZE
    key_system: str | None = None
    allow_unidentified: bool = False
    match: bool = True
    stop_after: int | None = None  # records; the import stops after that batch, resumable


@dataclass
class Totals:
    counts: Counter = field(default_factory=Counter)
    records: int = 0  # records read in this run
    last_number: int = 0  # the last committed line / entry
    complete: bool = False

    def as_dict(self) -> dict:
        return {name: self.counts.get(name, 0) for name in COUNTERS}


class RejectsFile:
    """The rejects, written after each batch commits: CSV (``_line``, ``_field``,
    ``_reason`` then the row as it was) or NDJSON (``line``, ``field``, ``reason`` and
    the record). Opened on the first reject; ``append`` when resuming."""

    def __init__(self, path: Path, fmt: str, *, header: Callable[[], tuple[str, ...]], append: bool) -> None:
        self.path, self.fmt, self.header = path, fmt, header
        self.written = 0
        self._file = None
        self._append = append and path.exists()
        if not append and path.exists():
            path.unlink()  # a stale file from an earlier run would read as this run's

    def write(self, rejects: Iterable[tuple[SourceRecord, dict[str, list[str]]]]) -> None:
        for record, errors in rejects:
            fields = [record.label(path) if path else "record" for path in errors]
            reason = "; ".join(
                f"{label}: {message}" if len(errors) > 1 else message
                for label, messages in zip(fields, errors.values(), strict=True)
                for message in messages
            )
            field_text = "; ".join(dict.fromkeys(fields))
            self._open()
            if self.fmt == "csv":
                self._writer.writerow([record.number, field_text, reason, *(record.raw or [])])
            else:
                line = {"line": record.number, "field": field_text, "reason": reason, "record": record.raw}
                self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            self.written += 1
        if self._file is not None:
            self._file.flush()

    def _open(self) -> None:
        if self._file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a" if self._append else "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise ImportFileError(f"Cannot write the rejects file {self.path}: {exc.strerror}.") from exc
        if self.fmt == "csv":
            self._writer = csv.writer(self._file)
            if not self._append:
                self._writer.writerow(["_line", "_field", "_reason", *self.header()])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Checkpoint:
    """A JSON file: which file (path, size, mtime, hash of its head), with which
    options, up to which line every batch is committed, and the totals so far."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ImportFileError(f"Cannot read the checkpoint {self.path}: {exc}.") from exc

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(partial, self.path)  # never half a checkpoint

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def options_fingerprint(**options) -> str:
    """A hash of everything that changes how lines become records (format, mapping, ...)."""
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resume_point(state: dict | None, *, identity: dict | None, fingerprint: str) -> tuple[int, Counter]:
    """(last committed number, totals so far) of a checkpoint, after checking it is
    this file read the same way; raises ImportFileError otherwise."""
    if identity is None:
        raise ImportFileError("stdin cannot be resumed: import from a file to use --resume.")
    if state is None:
        raise ImportFileError("Nothing to resume: no checkpoint for this file (run without --resume).")
    theirs = state.get("file", {})
    for key, what in (("path", "path"), ("size", "size"), ("mtime_ns", "modification time"),
                      ("head_sha256", "content")):  # fmt: skip
        if theirs.get(key) != identity[key]:
            raise ImportFileError(
                f"Refusing to resume: the checkpoint {state.get('checkpoint', '')} was written for a file "
                f"with another {what} ({theirs.get('path')}). Run without --resume to import this file "
                "from the start (safe: already imported records are found by their identifiers)."
            )
    if state.get("options") != fingerprint:
        raise ImportFileError(
            "Refusing to resume: the checkpoint was written with other options (format, mapping, "
            "defaults, key system, ...). Resume with the same options, or run without --resume."
        )
    return int(state["last_number"]), Counter(state.get("counts", {}))


def _batches(records: Iterator[SourceRecord], size: int, after: int) -> Iterator[list[SourceRecord]]:
    batch: list[SourceRecord] = []
    try:
        for record in records:
            if record.number <= after:
                continue
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
    except ImportFileError:
        if batch:
            yield batch  # the records read before the bad spot are good: write them first
        raise
    if batch:
        yield batch


def run_import(
    records: Iterator[SourceRecord],
    *,
    options: ImportOptions,
    rejects: RejectsFile,
    checkpoint: Callable[[Totals], None] = lambda totals: None,
    resume_after: int = 0,
    totals: Totals | None = None,
    progress: Callable[[Totals], None] = lambda totals: None,
) -> Totals:
    """Import ``records``; each batch commits, then its rejects and the checkpoint are written.

    Records numbered ``resume_after`` or lower are skipped (read, not written).
    """
    totals = totals or Totals()
    totals.last_number = max(totals.last_number, resume_after)
    for batch in _batches(records, options.batch_size, resume_after):
        readable = [r for r in batch if r.data is not None]
        result = write_batch(
            [(r.number, r.data) for r in readable],
            actor=options.actor,
            reason=options.reason,
            key_system=options.key_system,
            allow_unidentified=options.allow_unidentified,
            match=options.match,
        )
        by_number = {r.number: r for r in readable}
        rejected: list[tuple[SourceRecord, dict]] = [(r, r.errors) for r in batch if r.data is None]
        rejected += [(by_number[x.number], x.errors) for x in result.rejects]
        rejected.sort(key=lambda item: item[0].number)
        rejects.write(rejected)
        totals.counts.update(result.counts)
        totals.counts["rejected"] += len(batch) - len(readable)
        totals.records += len(batch)
        totals.last_number = batch[-1].number
        checkpoint(totals)
        progress(totals)
        if options.stop_after is not None and totals.records >= options.stop_after:
            return totals
    totals.complete = True
    return totals


class PlainProgress:
    """A line every ``every`` seconds when no terminal shows a bar."""

    def __init__(self, write: Callable[[str], None], *, size: int | None, consumed: Callable[[], int],
                 every: float = 10.0) -> None:  # fmt: skip
        self.write, self.size, self.consumed, self.every = write, size, consumed, every
        self.started = self.last = time.monotonic()

    def __call__(self, totals: Totals) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = totals.records / max(now - self.started, 1e-9)
        line = f"line {totals.last_number:,}: {totals.records:,} records, {rate:,.0f}/s"
        if self.size:
            share = self.consumed() / self.size
            eta = (now - self.started) * (1 - share) / share if share > 0 else 0
            line += f", {share:.0%} of the file, about {eta:,.0f} s left"
        counts = ", ".join(f"{k} {totals.counts.get(k, 0):,}" for k in COUNTERS)
        self.write(f"{line} ({counts})")
