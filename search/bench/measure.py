"""Timing and recall of clerk search and candidate retrieval over a loaded database."""

from __future__ import annotations

import random
import re
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection

from patients.models import Patient
from patients.services import patient_to_data
from search.bench.loader import PLANTED_TABLE
from search.blocking import explain_blocks, find_candidates
from search.normalize import fold
from search.queries import search_patients


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        value = samples[0] if samples else 0.0
        return value, value, value
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[94], cuts[98]


@dataclass
class Timings:
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    hits: Counter = field(default_factory=Counter)

    def add(self, kind: str, ms: float, hit: bool) -> None:
        self.samples[kind].append(ms)
        self.hits[kind] += hit

    def all(self) -> list[float]:
        return [ms for samples in self.samples.values() for ms in samples]


@dataclass
class RecallReport:
    timings: list[float]
    found: int
    total: int
    candidates: list[int]
    by_corruption: dict[str, list[int]]  # kind -> [found, total]
    found_by: Counter  # block -> originals it found
    only_found_by: Counter  # block -> originals no other block found
    misses: list[tuple[int, int, list[str]]]


def planted_sample(count: int, seed: int) -> list[tuple[int, int, list[str]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT original_id, duplicate_id, corruptions FROM {PLANTED_TABLE} ORDER BY duplicate_id"
        )
        rows = cursor.fetchall()
    return random.Random(seed).sample(rows, min(count, len(rows)))


def _load(patient_id: int):
    return patient_to_data(Patient.objects.get(pk=patient_id))


def measure_candidates(pairs, *, limit: int, warmup: int = 30) -> RecallReport:
    """Probe with each planted duplicate's data, excluding its own record: is the
    original among the candidates?"""
    probes = [(original, duplicate, kinds, _load(duplicate)) for original, duplicate, kinds in pairs]
    for _, duplicate, _, data in probes[:warmup]:
        find_candidates(data, limit=limit, exclude=duplicate)
    report = RecallReport([], 0, len(probes), [], defaultdict(lambda: [0, 0]), Counter(), Counter(), [])
    for original, duplicate, kinds, data in probes:
        started = time.perf_counter()
        candidates = find_candidates(data, limit=limit, exclude=duplicate)
        report.timings.append((time.perf_counter() - started) * 1000)
        report.candidates.append(len(candidates))
        hit = next((c for c in candidates if c.patient_id == original), None)
        report.found += hit is not None
        for kind in kinds:
            report.by_corruption[kind][0] += hit is not None
            report.by_corruption[kind][1] += 1
        if hit:
            report.found_by.update(hit.blocks)
            if len(hit.blocks) == 1:
                report.only_found_by[hit.blocks[0]] += 1
        else:
            report.misses.append((original, duplicate, kinds))
    return report


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # transposed letters


def clerk_query(patient_id: int, rng: random.Random) -> tuple[str, str] | None:
    """(form, text) of a search a clerk might type to find this patient."""
    data = _load(patient_id)
    if not data.names:
        return None
    name = data.names[0]
    given, family = (name.given[0] if name.given else ""), name.family
    if rng.random() < 0.5:
        given, family = fold(given), fold(family)
    born = data.birth_date
    mrn = next((i.value for i in data.identifiers if i.type == "MR"), None)
    phone = next((c.normalized_value for c in data.contacts if c.system == "phone"), None)
    forms = ["name + birth date", "family, given d/m/y", "partial name + year", "name only"]
    forms += ["identifier"] * bool(mrn) + ["phone"] * bool(phone and phone.startswith("+1"))
    form = rng.choice(forms)
    if form in ("name + birth date", "family, given d/m/y", "partial name + year") and not born:
        form = "name only"
    if form == "name + birth date":
        return form, f"{given} {_typo(family, rng) if rng.random() < 0.5 else family} {born.isoformat()}"
    if form == "family, given d/m/y":
        return form, f"{family}, {_typo(given, rng)} {born.day:02d}/{born.month:02d}/{born.year}"
    if form == "partial name + year":
        return form, f"{family[:4]} {given[:3]} {born.year}"
    if form == "identifier":
        return form, f"MRN {mrn}"
    if form == "phone":
        digits = re.sub(r"\D", "", phone)[1:]
        return form, f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return form, f"{given} {family}"


def measure_search(count: int, seed: int, *, warmup: int = 30) -> Timings:
    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM patients_patient")
        top = cursor.fetchone()[0] or 0
    queries = []
    while len(queries) < count + warmup and top:
        patient_id = rng.randint(1, top)
        if query := clerk_query(patient_id, rng):
            queries.append((patient_id, *query))
    for _, _, text in queries[:warmup]:
        search_patients(text=text)
    timings = Timings()
    for patient_id, form, text in queries[warmup:]:
        started = time.perf_counter()
        result = search_patients(text=text, limit=10)
        timings.add(
            form, (time.perf_counter() - started) * 1000, patient_id in [h.patient_id for h in result.hits]
        )
    return timings


def block_plans(duplicate_id: int) -> dict[str, str]:
    """EXPLAIN ANALYZE of each block for one probe."""
    return explain_blocks(_load(duplicate_id), analyze=True)


def plan_summary(plan: str) -> str:
    """The index scans a plan uses, and its execution time."""
    scans = re.findall(r"(Bitmap Index Scan|Index Scan|Index Only Scan|Seq Scan) (?:using|on) (\w+)", plan)
    ran = re.search(r"Execution Time: ([\d.]+) ms", plan)
    uses = ", ".join(dict.fromkeys(f"{kind} {name}" for kind, name in scans))
    return f"{uses}{f'  ({ran[1]} ms)' if ran else ''}"
