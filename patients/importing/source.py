"""Input files: opening a path or stdin, reading lines with their numbers and byte
positions, and the record shape every reader yields."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from patients.data import PatientData

# Hashed with the size and mtime to tell a resumed file from another one.
HEAD_BYTES = 1 << 20
FORMATS = {".csv": "csv", ".tsv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "bundle"}


class ImportFileError(Exception):
    """The file cannot be read as asked (empty, wrong format, wrong encoding, ...):
    the import stops with this message, never a traceback."""


@dataclass(frozen=True)
class SourceRecord:
    """One record of the source. ``number`` is its line (CSV, NDJSON) or entry (Bundle).

    Either ``data`` (for the writer) or ``errors`` (the reader could not make sense of
    a value: field -> messages) is set. ``raw`` is what goes to the rejects file;
    ``labels`` names, for a data path prefix (``names[0].family``, ``identifiers[1]``),
    the field of the source it came from, so a reject speaks the file's language.
    """

    number: int
    data: PatientData | None = None
    errors: dict[str, list[str]] | None = None
    raw: Any = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def label(self, path: str) -> str:
        """The source field of a data path: the longest labelled prefix, else the path."""
        probe = path
        while probe:
            if probe in self.labels:
                return self.labels[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return self.labels.get(path, path) or path


def detect_format(path: str, override: str | None) -> str:
    if override:
        return override
    if path == "-":
        raise ImportFileError("Reading stdin: say what it holds with --format csv, ndjson or bundle.")
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(FORMATS)
        raise ImportFileError(f"Cannot tell the format of {path} from its extension ({known}): use --format.")
    return fmt


@dataclass
class Source:
    """An open input: a file (whose identity a checkpoint records) or stdin."""

    name: str
    stream: BinaryIO
    size: int | None = None  # None for stdin
    identity: dict | None = None  # None for stdin: it cannot be resumed
    consumed: int = 0  # bytes read so far, for progress

    @classmethod
    def open(cls, path: str) -> Source:
        if path == "-":
            return cls(name="stdin", stream=sys.stdin.buffer)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by Source.close
        except OSError as exc:
            raise ImportFileError(f"Cannot open {path}: {exc.strerror}.") from exc
        stat = os.fstat(stream.fileno())
        if stat.st_size == 0:
            stream.close()
            raise ImportFileError(f"{path} is empty.")
        head = hashlib.sha256(stream.read(HEAD_BYTES)).hexdigest()
        stream.seek(0)
        identity = {
            "path": str(Path(path).resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "head_sha256": head,
        }
        return cls(name=path, stream=stream, size=stat.st_size, identity=identity)

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()

    def lines(self, encoding: str) -> Iterator[tuple[int, str]]:
        """(line number from 1, decoded line with its newline). A line that does not
        decode stops the import with its number: the rest of the file is suspect too."""
        for number, raw in enumerate(self.stream, start=1):
            self.consumed += len(raw)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1].hex()
                raise ImportFileError(
                    f"Line {number} is not valid {encoding} (byte 0x{byte} at column {exc.start + 1}): "
                    "convert the file or give its encoding with --encoding (e.g. latin-1)."
                ) from exc
            if number == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not data
            yield number, text
