"""The figures, their targets (issue 8 and 9, stated at 1M patients) and the printed table.

Every figure is shown next to its floor measured in the same run and the ratio
between them, so a reader can tell a slow machine from a slow system: on a machine
twice as busy both the figure and the floor roughly double, the ratio does not.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

MILLION = 1_000_000


@dataclass(frozen=True)
class Target:
    text: str  # as printed: "p95 <= 10 ms"
    limit: float
    higher_is_better: bool = False

    def passed(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.limit if self.higher_is_better else value <= self.limit


# Latency targets are on p95; throughput, import and find_duplicates on rates
# (20 min and 5 min at 1M as records or patients per second, so any N can be judged).
TARGETS = {
    "read_rest": Target("p95 <= 10 ms", 10),
    "clerk_search": Target("p95 <= 50 ms", 50),
    "fhir_search": Target("p95 <= 50 ms", 50),
    "match": Target("p95 <= 25 ms", 25),
    "register_rest": Target("p95 <= 50 ms", 50),
    "register_fhir": Target("p95 <= 50 ms", 50),
    "audit_overhead": Target("added p95 <= 5 ms", 5),
    "rps_read": Target(">= 800 req/s", 800, higher_is_better=True),
    "rps_match": Target(">= 300 req/s", 300, higher_is_better=True),
    "import": Target(f">= {MILLION / 1200:,.0f} rec/s (1M in 20 min)", MILLION / 1200, higher_is_better=True),
    "find_duplicates": Target(
        f">= {MILLION / 300:,.0f} pat/s (1M in 5 min)", MILLION / 300, higher_is_better=True
    ),
    "worker_rss": Target("<= 200 MB", 200),
}


def percentiles(samples: list[float]) -> tuple[float, float, float] | None:
    if not samples:
        return None
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[94], cuts[98]


@dataclass
class Figure:
    key: str
    label: str
    unit: str  # "ms" (latency percentiles), "req/s", "rec/s", "pat/s", "MB"
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    value: float | None = None  # a rate or a size (not a latency)
    floor: float | None = None  # the floor's p95 (latency) or rate
    floor_label: str = ""
    samples: int = 0
    errors: int = 0
    notes: list[str] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    @property
    def measured(self) -> float | None:
        return self.p95 if self.unit == "ms" else self.value

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.floor:
            return None
        return self.measured / self.floor

    @property
    def target(self) -> Target | None:
        return TARGETS.get(self.key)

    @property
    def passed(self) -> bool | None:
        target = self.target
        return target.passed(self.measured) if target else None

    def as_dict(self) -> dict:
        target = self.target
        return {
            **asdict(self),
            "ratio": self.ratio,
            "target": target.text if target else None,
            "passed": self.passed,
        }


def latency(
    key: str, label: str, ms: list[float], *, floor: float | None = None, floor_label: str = ""
) -> Figure:
    cuts = percentiles(ms)
    p50, p95, p99 = cuts if cuts else (None, None, None)
    return Figure(key, label, "ms", p50, p95, p99, floor=floor, floor_label=floor_label, samples=len(ms))


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("req/s", "rec/s", "pat/s"):
        return f"{value:,.0f} {unit}"
    if unit == "MB":
        return f"{value:,.0f} MB"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 1 else f"{value:.1f}x"


def table(figures: list[Figure]) -> list[str]:
    header = ("figure", "p50 ms", "p95 ms", "p99 ms", "rate / size", "floor", "ratio", "target", "result")
    rows = [header]
    for f in figures:
        latency_figure = f.unit == "ms"
        floor = "-" if f.floor is None else (_num(f.floor) if latency_figure else _num(f.floor, f.unit))
        passed = {True: "PASS", False: "FAIL", None: ""}[f.passed]
        rows.append(
            (
                f.label + (f" [{f.errors} errors]" if f.errors else ""),
                _num(f.p50) if latency_figure else "",
                _num(f.p95) if latency_figure else "",
                _num(f.p99) if latency_figure else "",
                "" if latency_figure else _num(f.value, f.unit),
                floor,
                _ratio(f.ratio),
                f.target.text if f.target else "",
                passed,
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def write_json(path: Path, meta: dict, figures: list[Figure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"meta": meta, "figures": [f.as_dict() for f in figures]}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
