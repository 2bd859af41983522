"""Bulk import of patients from CSV, FHIR NDJSON or a FHIR Bundle (docs/import.md).

The command lives in ``fhir_api`` because it needs every layer: the CSV reader and
the bulk write path (``patients``), the FHIR readers (``fhir_api``) and switching
matching off (``matching``); only ``fhir_api`` may import all of them (ARCHITECTURE.md).
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from matching.services import matching_disabled
from patients.bulk import COUNTERS
from patients.importing.csvformat import CsvReader, parse_mapping, read_mapping_file
from patients.importing.runner import (
    DEFAULT_BATCH_SIZE,
    Checkpoint,
    ImportOptions,
    PlainProgress,
    RejectsFile,
    Totals,
    options_fingerprint,
    resume_point,
    run_import,
)
from patients.importing.source import FORMATS, ImportFileError, Source, detect_format

REJECTS_EXTENSION = {"csv": ".csv", "ndjson": ".ndjson", "bundle": ".ndjson"}


class Command(BaseCommand):
    help = (
        "Import patients from a CSV file, FHIR NDJSON (one Patient per line) or a FHIR Bundle "
        "('-' reads stdin). Records go through the registry's validation and write rules in "
        "batches; bad records go to a rejects file; re-running the same file is safe (a record "
        "whose key identifier exists updates that patient, or leaves it unchanged); an "
        "interrupted import continues with --resume. See docs/import.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The file to import, or - for stdin.")
        parser.add_argument(
            "--format",
            choices=["csv", "ndjson", "bundle"],
            help=f"Override the format the extension says ({', '.join(FORMATS)}); required for stdin.",
        )
        csv_group = parser.add_argument_group("CSV")
        csv_group.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN,...",
            help="Read a field from a column of another name; COLUMN+COLUMN joins columns with a space.",
        )
        csv_group.add_argument("--map-file", help="A file of FIELD=COLUMN lines (# comments).")
        csv_group.add_argument(
            "--default",
            action="append",
            default=[],
            metavar="FIELD=VALUE,...",
            help="A value for a field the file leaves empty or lacks (e.g. identifier_system=urn:oid:...).",
        )
        csv_group.add_argument("--delimiter", help="Column separator (default ',', tab for .tsv).")
        csv_group.add_argument(
            "--date-format", help="strptime format of dates (default ISO YYYY-MM-DD), e.g. %%d/%%m/%%Y."
        )
        parser.add_argument("--encoding", default="utf-8", help="Text encoding of the file (default utf-8).")
        parser.add_argument(
            "--key-system",
            help="Identifier system that keys a record (default: the record's first identifier).",
        )
        parser.add_argument(
            "--allow-unidentified",
            action="store_true",
            help="Load records without a key identifier (always created: a re-run creates them again).",
        )
        parser.add_argument(
            "--match",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="Match each batch against the registry (default); --no-match for an initial load, "
            "then run find_duplicates.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Records per transaction (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument("--user", help="Username recorded in history as the actor (default: none).")
        parser.add_argument(
            "--reason", help="Change reason recorded in history (default 'Imported from <file>')."
        )
        parser.add_argument(
            "--rejects", help="Rejects file (default <file>.rejects.csv|ndjson beside the input)."
        )
        parser.add_argument(
            "--checkpoint", help="Checkpoint file (default var/import_patients/<file>-<hash>.json)."
        )
        parser.add_argument(
            "--resume", action="store_true", help="Continue an interrupted import of this file."
        )
        parser.add_argument(
            "--stop-after",
            type=int,
            metavar="N",
            help="Stop after the batch that reaches N records (resumable).",
        )
        parser.add_argument(
            "--progress", action="store_true", help="Progress bar even when stderr is not a terminal."
        )

    def handle(self, *args, **opts):
        try:
            self._handle(opts)
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc

    def _handle(self, opts) -> None:
        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if opts["stop_after"] is not None and opts["stop_after"] < 1:
            raise CommandError("--stop-after must be at least 1.")
        try:
            codecs.lookup(opts["encoding"])
        except LookupError as exc:
            raise CommandError(f"Unknown encoding {opts['encoding']!r}.") from exc
        path = opts["path"]
        fmt = detect_format(path, opts["format"])
        actor = self._actor(opts["user"])
        mapping_specs = [*(read_mapping_file(opts["map_file"]) if opts["map_file"] else []), *opts["map"]]
        csv_only = (mapping_specs, opts["default"], opts["delimiter"], opts["date_format"])
        utf8 = codecs.lookup(opts["encoding"]).name == "utf-8"
        if fmt != "csv" and (any(csv_only) or not utf8):
            raise CommandError(
                "--map, --map-file, --default, --delimiter, --date-format and --encoding are for CSV "
                "input (JSON is UTF-8)."
            )
        mapping = parse_mapping(mapping_specs, what="--map")
        defaults = parse_mapping(opts["default"], what="--default")

        source = Source.open(path)
        try:
            reader = self._reader(fmt, source, opts, mapping, defaults)
            fingerprint = options_fingerprint(
                format=fmt,
                mapping=mapping,
                defaults=defaults,
                encoding=opts["encoding"],
                delimiter=opts["delimiter"],
                date_format=opts["date_format"],
                key_system=opts["key_system"],
                allow_unidentified=opts["allow_unidentified"],
            )
            checkpoint = Checkpoint(
                Path(opts["checkpoint"]) if opts["checkpoint"] else _checkpoint_path(source)
            )
            totals = Totals()
            resume_after = 0
            if opts["resume"]:
                resume_after, counts = resume_point(
                    checkpoint.load(), identity=source.identity, fingerprint=fingerprint
                )
                totals.counts.update(counts)
                self.stdout.write(f"Resuming {path} after line {resume_after:,}.")
            rejects = RejectsFile(
                Path(opts["rejects"]) if opts["rejects"] else _rejects_path(source, fmt),
                reader.rejects_format,
                header=lambda: reader.header,
                append=opts["resume"],
            )
            options = ImportOptions(
                actor=actor,
                reason=opts["reason"] or f"Imported from {Path(source.name).name}",
                batch_size=opts["batch_size"],
                key_system=opts["key_system"],
                allow_unidentified=opts["allow_unidentified"],
                match=opts["match"],
                stop_after=opts["stop_after"],
            )

            def save_checkpoint(t: Totals) -> None:
                if source.identity is not None:
                    checkpoint.save(
                        {
                            "file": source.identity,
                            "options": fingerprint,
                            "last_number": t.last_number,
                            "counts": t.as_dict(),
                            "checkpoint": str(checkpoint.path),
                        }
                    )

            progress = self._progress(opts, source)
            started = time.monotonic()
            try:
                with nullcontext() if opts["match"] else matching_disabled():
                    totals = run_import(
                        reader.records(),
                        options=options,
                        rejects=rejects,
                        checkpoint=save_checkpoint,
                        resume_after=resume_after,
                        totals=totals,
                        progress=progress,
                    )
            except KeyboardInterrupt:
                raise CommandError(
                    f"Interrupted. Batches up to line {totals.last_number:,} are committed; "
                    "run again with --resume to continue.",
                    returncode=130,
                ) from None
            finally:
                rejects.close()
                if hasattr(progress, "close"):
                    progress.close()
            if totals.complete:
                checkpoint.clear()
            self._summary(path, opts, reader, totals, rejects, checkpoint, time.monotonic() - started)
        finally:
            source.close()

    def _actor(self, username: str | None):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return user

    def _reader(self, fmt: str, source: Source, opts, mapping, defaults):
        if fmt == "csv":
            return CsvReader(
                source,
                mapping=mapping,
                defaults=defaults,
                encoding=opts["encoding"],
                delimiter=opts["delimiter"],
                date_format=opts["date_format"],
            )
        from fhir_api.importing import BundleReader, NdjsonReader

        reader = NdjsonReader if fmt == "ndjson" else BundleReader
        return reader(source)

    def _progress(self, opts, source: Source):
        if (sys.stderr.isatty() or opts["progress"]) and opts["verbosity"] > 0:
            return _Bar(source)
        return PlainProgress(self.stdout.write, size=source.size, consumed=lambda: source.consumed)

    def _summary(self, path, opts, reader, totals: Totals, rejects: RejectsFile, checkpoint, seconds: float):
        out = self.stdout.write
        rate = totals.records / seconds if seconds > 0 else 0.0
        if totals.complete:
            out(self.style.SUCCESS(f"Import of {path} complete."))
        else:
            out(self.style.WARNING(f"Import of {path} stopped after line {totals.last_number:,}."))
            if checkpoint.path.exists():
                out(f"  run again with --resume to continue (checkpoint {checkpoint.path})")
        out(f"  this run: {totals.records:,} records in {seconds:.1f} s ({rate:,.0f} records/s)")
        out("  " + ", ".join(f"{name.replace('_', ' ')} {totals.counts.get(name, 0):,}" for name in COUNTERS))
        if rejects.written:
            out(self.style.WARNING(f"  {rejects.written:,} rejects written to {rejects.path}"))
        ignored = getattr(getattr(reader, "layout", None), "ignored", ())
        if ignored:
            out(self.style.WARNING(f"  columns ignored (not a known field; see --map): {', '.join(ignored)}"))
        if not opts["match"]:
            out("  matching was off: run find_duplicates to look for duplicates (docs/batch-commands.md)")


class _Bar:
    """tqdm over the bytes of the file (records for stdin), with the record rate."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.started = time.monotonic()
        if source.size:
            self.bar = tqdm(total=source.size, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)
        else:
            self.bar = tqdm(unit="record", file=sys.stderr)

    def __call__(self, totals: Totals) -> None:
        done = self.source.consumed if self.source.size else totals.records
        self.bar.update(done - self.bar.n)
        rate = totals.records / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix(
            records=f"{totals.records:,}", per_s=f"{rate:,.0f}", rejected=totals.counts["rejected"]
        )

    def close(self) -> None:
        self.bar.close()


def _rejects_path(source: Source, fmt: str) -> Path:
    name = "import" if source.identity is None else Path(source.name).stem
    folder = Path.cwd() if source.identity is None else Path(source.name).parent
    return folder / f"{name}.rejects{REJECTS_EXTENSION[fmt]}"


def _checkpoint_path(source: Source) -> Path:
    key = hashlib.sha256((source.identity or {}).get("path", "stdin").encode()).hexdigest()[:8]
    return Path(settings.BASE_DIR) / "var" / "import_patients" / f"{Path(source.name).stem}-{key}.json"
