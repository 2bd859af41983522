"""Batch duplicate detection over the whole registry (see matching/batch.py)."""

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from matching import batch
from matching.pairs import DEFAULT_WINDOW

PLAIN_PROGRESS_SECONDS = 10.0


class Command(BaseCommand):
    help = (
        "Find likely duplicates among all patients: candidate pairs from the search blocks "
        "(SQL self-joins), scored with the active match model; pairs at 'possible' or above "
        "open or refresh a MatchCandidate (decided pairs stay decided; open ones now scored below "
        "are closed). Resumable: an interrupted pass continues from its checkpoint; --restart "
        "starts over."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--restart", action="store_true", help="Forget the checkpoint and start a new pass."
        )
        parser.add_argument(
            "--checkpoint", help="Checkpoint file (default var/find_duplicates-<database>.json)."
        )
        parser.add_argument(
            "--window",
            type=int,
            default=DEFAULT_WINDOW,
            help=f"Per-key cap: a patient meets the next N members of a key (default {DEFAULT_WINDOW}).",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=batch.DEFAULT_CHUNK_PATIENTS,
            help=f"Patients per chunk (and checkpoint), default {batch.DEFAULT_CHUNK_PATIENTS}.",
        )
        parser.add_argument(
            "--workers", type=int, default=2, help="Scoring processes (default 2; 0 or 1: in this process)."
        )
        parser.add_argument(
            "--limit-chunks", type=int, help="Stop after N chunks (the pass stays resumable)."
        )
        parser.add_argument(
            "--progress", action="store_true", help="Show the progress bar even when stderr is no terminal."
        )

    def handle(self, *args, **opts):
        for name in ("window", "chunk_size"):
            if opts[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        if opts["workers"] < 0 or (opts["limit_chunks"] is not None and opts["limit_chunks"] < 1):
            raise CommandError("--workers must be >= 0 and --limit-chunks >= 1.")
        checkpoint = batch.Checkpoint(opts["checkpoint"] or batch.default_checkpoint_path())
        if opts["restart"]:
            checkpoint.clear()
        options = batch.BatchOptions(
            window=opts["window"],
            chunk_patients=opts["chunk_size"],
            workers=opts["workers"],
            limit_chunks=opts["limit_chunks"],
        )
        progress = self._progress(opts)
        started = time.monotonic()
        try:
            totals, complete = batch.run_batch(
                checkpoint=checkpoint, options=options, log=self.stdout.write, progress=progress.update
            )
        except batch.CheckpointError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            progress.close()
        self._summary(totals, complete, checkpoint, time.monotonic() - started)

    def _progress(self, opts):
        tty = sys.stderr.isatty() or opts["progress"]
        return _Progress(tty=tty and opts["verbosity"] > 0, write=self.stdout.write)

    def _summary(
        self, totals: batch.Totals, complete: bool, checkpoint: batch.Checkpoint, seconds: float
    ) -> None:
        out = self.stdout.write
        out("")
        state = "complete." if complete else f"stopped; run again to resume from {checkpoint.path}."
        out(f"Duplicate detection {state}")
        out(
            f"  pairs generated {totals.pairs_generated:,}, scored {totals.pairs_scored:,} "
            f"in {totals.chunks:,} chunks ({totals.rejected_early:,} rejected early by the weight bound)"
        )
        out(f"  {'grade':<15}{'scored':>12}{'opened':>10}{'refreshed':>11}")
        for grade in batch.GRADES:
            g = grade.value
            row = (totals.scored.get(g, 0), totals.opened.get(g, 0), totals.refreshed.get(g, 0))
            opened = f"{row[1]:>10,}{row[2]:>11,}" if g != "certainly-not" else f"{'-':>10}{'-':>11}"
            out(f"  {g:<15}{row[0]:>12,}{opened}")
        out(f"  open candidates refreshed with the score they had, left untouched: {totals.unchanged:,}")
        out(f"  decided pairs left as decided: {totals.kept_decided:,}")
        out(f"  open candidates scored below possible, closed: {totals.closed:,}")
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in totals.seconds.items())
        out(f"  elapsed: this run {seconds:.1f} s; the pass so far: {phases}")
        out("  (load/prepare_records run alongside pairs_sql; scoring(_cpu) is summed over the workers)")


class _Progress:
    """tqdm on a terminal; otherwise a plain line every PLAIN_PROGRESS_SECONDS."""

    def __init__(self, *, tty: bool, write) -> None:
        self.bar = None
        self.tty, self.write = tty, write
        self.last = time.monotonic()

    def update(self, done: int, total: int) -> None:
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=total, unit="pair", unit_scale=True, file=sys.stderr)
            self.bar.update(done - self.bar.n)
        elif time.monotonic() - self.last >= PLAIN_PROGRESS_SECONDS or done >= total:
            self.last = time.monotonic()
            self.write(f"scored {done:,} of {total:,} pairs ({100 * done / max(total, 1):.0f}%)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
