"""A versioned, JSON-serialisable Fellegi-Sunter parameter set.

``MatchParams`` holds, for every field and scored level, the m probability (of the
level among pairs of records of the same person) and the u probability (among pairs of
different people, i.e. random pairs), the prior, the grade thresholds, the
term-frequency settings, the household dependency correction and the guard-rail
ceilings. ``to_json``/``from_json`` round-trip it so that it can be stored in the
database next to its version label; ``from_dict`` rejects a malformed set with a
``ParameterError`` that says what is wrong. Pure code.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from matching import levels as L

SCHEMA = 1
GRADE_ORDER = ("certain", "probable", "possible")
GUARD_RAILS = (
    "twins_given_similar",
    "twins_given_differs",
    "multiple_birth_order_differs",
    "generation_differs",
    "identifier_conflict",
    "birth_date_differs",
)


class ParameterError(ValueError):
    """A parameter set that cannot be used; the message names the offending entry."""


@dataclass(frozen=True)
class LevelParams:
    m: float
    u: float

    @property
    def weight(self) -> float:
        """log2(m/u): the bits of evidence this level adds to the match weight."""
        return math.log2(self.m / self.u)


@dataclass(frozen=True)
class MatchParams:
    version: str
    # field -> scored level -> (m, u)
    levels: dict[str, dict[str, LevelParams]]
    # Probability that two records drawn at random from the index are the same person.
    prior: float
    # Lowest probability of each grade; below "possible" is "certainly-not".
    thresholds: dict[str, float]
    # Optional fixed weights (bits) for neutral levels, e.g. {"email": {"missing": -0.5}}.
    neutral_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    # Levels whose u is replaced by the agreed value's frequency when one is supplied.
    tf_levels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tf_minimum_u: float = 1e-5
    # Fields that all witness "same household": only the strongest group counts fully.
    household_groups: tuple[tuple[str, ...], ...] = ()
    household_damping: float = 1.0
    # Guard rail -> the highest probability a pair that trips it may get.
    guard_rails: dict[str, float] = field(default_factory=dict)
    unique_identifier_systems: tuple[str, ...] = ()
    unique_identifier_types: tuple[str, ...] = ()
    # When set, the prior follows the index size: expected / population.
    expected_duplicates_per_record: float | None = None
    description: str = ""

    def prior_for(self, population: int | None) -> float:
        """The prior for an index of ``population`` records (``prior`` when unknown)."""
        if not population or self.expected_duplicates_per_record is None:
            return self.prior
        return min(0.5, self.expected_duplicates_per_record / max(population, 1))

    def with_prior(self, prior: float, *, version: str | None = None) -> MatchParams:
        return replace(self, prior=prior, version=version or self.version)

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1 - self.prior))

    # -- serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": self.version,
            "description": self.description,
            "prior": self.prior,
            "expected_duplicates_per_record": self.expected_duplicates_per_record,
            "thresholds": dict(self.thresholds),
            "levels": {
                f: {lvl: {"m": p.m, "u": p.u} for lvl, p in lv.items()} for f, lv in self.levels.items()
            },
            "neutral_weights": {f: dict(w) for f, w in self.neutral_weights.items()},
            "tf_levels": {f: list(v) for f, v in self.tf_levels.items()},
            "tf_minimum_u": self.tf_minimum_u,
            "household_groups": [list(g) for g in self.household_groups],
            "household_damping": self.household_damping,
            "guard_rails": dict(self.guard_rails),
            "unique_identifier_systems": list(self.unique_identifier_systems),
            "unique_identifier_types": list(self.unique_identifier_types),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MatchParams:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"Parameter set is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> MatchParams:
        if not isinstance(data, dict):
            raise ParameterError("Parameter set must be a JSON object.")
        if data.get("schema", SCHEMA) != SCHEMA:
            raise ParameterError(f"Unsupported parameter schema {data.get('schema')!r}; expected {SCHEMA}.")
        try:
            levels = {
                f: {lvl: LevelParams(float(p["m"]), float(p["u"])) for lvl, p in lv.items()}
                for f, lv in data["levels"].items()
            }
            params = cls(
                version=str(data["version"]),
                description=str(data.get("description", "")),
                levels=levels,
                prior=float(data["prior"]),
                expected_duplicates_per_record=(
                    None
                    if data.get("expected_duplicates_per_record") is None
                    else float(data["expected_duplicates_per_record"])
                ),
                thresholds={k: float(v) for k, v in data["thresholds"].items()},
                neutral_weights={
                    f: {lvl: float(w) for lvl, w in ws.items()}
                    for f, ws in data.get("neutral_weights", {}).items()
                },
                tf_levels={f: tuple(v) for f, v in data.get("tf_levels", {}).items()},
                tf_minimum_u=float(data.get("tf_minimum_u", 1e-5)),
                household_groups=tuple(tuple(g) for g in data.get("household_groups", ())),
                household_damping=float(data.get("household_damping", 1.0)),
                guard_rails={k: float(v) for k, v in data.get("guard_rails", {}).items()},
                unique_identifier_systems=tuple(data.get("unique_identifier_systems", ())),
                unique_identifier_types=tuple(data.get("unique_identifier_types", ())),
            )
        except KeyError as exc:
            raise ParameterError(f"Parameter set is missing {exc.args[0]!r}.") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise ParameterError(f"Parameter set is malformed: {exc}") from exc
        params.validate()
        return params

    def validate(self) -> None:
        """Raise ParameterError unless every field, level and number is usable."""
        for f in L.FIELDS:
            if f not in self.levels:
                raise ParameterError(f"No levels for field {f!r}.")
        for f, lv in self.levels.items():
            if f not in L.SCORED_LEVELS:
                raise ParameterError(f"Unknown field {f!r}; fields are {', '.join(L.FIELDS)}.")
            for lvl in L.SCORED_LEVELS[f]:
                if lvl not in lv:
                    raise ParameterError(f"{f}: no m/u for level {lvl!r}.")
            for lvl, p in lv.items():
                if lvl not in L.SCORED_LEVELS[f]:
                    raise ParameterError(f"{f}: unknown scored level {lvl!r}.")
                for name, value in (("m", p.m), ("u", p.u)):
                    if not 0 < value <= 1:
                        raise ParameterError(f"{f}.{lvl}: {name}={value} is not in (0, 1].")
        for f, ws in self.neutral_weights.items():
            for lvl in ws:
                if f not in L.NEUTRAL_LEVELS or lvl not in L.NEUTRAL_LEVELS[f]:
                    raise ParameterError(f"{f}: {lvl!r} is not a neutral level.")
        for f, lvls in self.tf_levels.items():
            for lvl in lvls:
                if f not in L.SCORED_LEVELS or lvl not in L.SCORED_LEVELS[f]:
                    raise ParameterError(f"tf_levels: {f}.{lvl} is not a scored level.")
        if not 0 < self.prior < 1:
            raise ParameterError(f"prior={self.prior} is not in (0, 1).")
        expected = self.expected_duplicates_per_record
        if expected is not None and not expected > 0:
            raise ParameterError(f"expected_duplicates_per_record={expected} is not > 0.")
        if set(self.thresholds) != set(GRADE_ORDER):
            raise ParameterError(f"thresholds must give exactly {', '.join(GRADE_ORDER)}.")
        t = [self.thresholds[g] for g in GRADE_ORDER]
        if not (1 > t[0] > t[1] > t[2] > 0):
            raise ParameterError("thresholds must satisfy 1 > certain > probable > possible > 0.")
        if not 0 < self.tf_minimum_u <= 1:
            raise ParameterError(f"tf_minimum_u={self.tf_minimum_u} is not in (0, 1].")
        if not 0 <= self.household_damping <= 1:
            raise ParameterError(f"household_damping={self.household_damping} is not in [0, 1].")
        for group in self.household_groups:
            for f in group:
                if f not in L.SCORED_LEVELS:
                    raise ParameterError(f"household_groups: unknown field {f!r}.")
        for rail, ceiling in self.guard_rails.items():
            if rail not in GUARD_RAILS:
                raise ParameterError(f"Unknown guard rail {rail!r}; known: {', '.join(GUARD_RAILS)}.")
            # A pair that trips a guard rail must never be graded certain.
            if not 0 < ceiling < self.thresholds["certain"]:
                raise ParameterError(f"guard_rails.{rail}={ceiling} is not in (0, certain threshold).")


def format_summary(params: MatchParams) -> str:
    """A printable table of every level's m, u and weight (bits), field by field."""
    lines = [
        f"Match parameters {params.version}" + (f" - {params.description}" if params.description else ""),
        f"prior {params.prior:.3g} ({params.prior_weight:+.2f} bits); thresholds "
        + ", ".join(f"{g} >= {params.thresholds[g]}" for g in GRADE_ORDER),
        f"{'field':<15}{'level':<17}{'m':>10}{'u':>12}{'weight':>9}",
    ]
    for f in L.FIELDS:
        for lvl in L.SCORED_LEVELS[f]:
            p = params.levels[f][lvl]
            tf = " tf" if lvl in params.tf_levels.get(f, ()) else ""
            lines.append(f"{f:<15}{lvl:<17}{p.m:>10.4g}{p.u:>12.4g}{p.weight:>+9.2f}{tf}")
        for lvl, w in params.neutral_weights.get(f, {}).items():
            lines.append(f"{f:<15}{lvl:<17}{'':>10}{'':>12}{w:>+9.2f} fixed")
    return "\n".join(lines)
