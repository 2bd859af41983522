"""Training the model from the data, as Splink does.

1. ``estimate_u(random_pairs)``: compare pairs of records drawn at random from the
   index. Almost all are different people, so each level's share is its u.
2. ``estimate_m_em(blocked_pairs, params)``: expectation-maximisation over the
   candidate pairs that blocking finds, with u held fixed (from step 1) and the
   proportion of matches among those pairs (lambda) estimated alongside m. Leave out
   the fields a blocking rule required to agree (``exclude``): on those pairs they
   agree by construction and say nothing about m.
3. ``random_pair_prior(...)``: turn the blocked-pair lambda into the prior the model
   uses (the chance that two *random* records are one person).

A pair is given as its comparison levels: either a ``{field: level}`` mapping or the
``FieldComparison`` tuple that ``compare_prepared`` returns. Neutral levels (missing,
placeholder, ...) take no part in training. Identical level patterns are counted
once, so EM over millions of pairs costs a few thousand patterns per iteration.
Pure code: no database.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from matching import levels as L
from matching.comparators import FieldComparison
from matching.params import LevelParams, MatchParams, format_summary

PairLevels = Mapping[str, str] | Sequence[FieldComparison]
PROBABILITY_FLOOR = 1e-6


def _as_mapping(pair: PairLevels) -> Mapping[str, str]:
    if isinstance(pair, Mapping):
        return pair
    return {c.field: c.level for c in pair}


def _normalised(counts: Mapping[str, float], levels: Sequence[str], floor: float) -> dict[str, float]:
    """Shares of ``counts`` over ``levels``, none below ``floor``, summing to 1."""
    total = sum(counts.get(lvl, 0.0) for lvl in levels)
    raw = {lvl: max(counts.get(lvl, 0.0) / total, floor) for lvl in levels}
    norm = sum(raw.values())
    return {lvl: v / norm for lvl, v in raw.items()}


def estimate_u(
    random_pairs: Iterable[PairLevels], *, floor: float = PROBABILITY_FLOOR
) -> dict[str, dict[str, float]]:
    """u per field and scored level from pairs of (nearly all) different people.

    Fields never scored in the sample are left out of the answer: keep their u.
    """
    counts: dict[str, Counter] = {f: Counter() for f in L.FIELDS}
    for pair in random_pairs:
        for field, level in _as_mapping(pair).items():
            if field in counts and L.is_scored(field, level):
                counts[field][level] += 1
    return {f: _normalised(c, L.SCORED_LEVELS[f], floor) for f, c in counts.items() if sum(c.values()) > 0}


def with_u(
    params: MatchParams, u: Mapping[str, Mapping[str, float]], *, version: str | None = None
) -> MatchParams:
    """A copy of ``params`` with the given u values (others kept)."""
    levels = {
        f: {lvl: LevelParams(p.m, u.get(f, {}).get(lvl, p.u)) for lvl, p in lv.items()}
        for f, lv in params.levels.items()
    }
    return replace(params, levels=levels, version=version or params.version)


@dataclass(frozen=True)
class EMResult:
    params: MatchParams  # the initial parameters with the trained fields' m replaced
    lambda_: float  # estimated share of matches among the training pairs
    iterations: int
    converged: bool
    max_change: float  # largest change of any m or lambda in the last iteration
    n_pairs: int
    n_patterns: int
    trained_fields: tuple[str, ...]

    def summary(self) -> str:
        state = "converged" if self.converged else "did NOT converge"
        head = (
            f"EM {state} after {self.iterations} iterations (last change {self.max_change:.2e}) "
            f"on {self.n_pairs} pairs ({self.n_patterns} distinct patterns); "
            f"lambda (share of matches among these pairs) = {self.lambda_:.4g}; "
            f"trained: {', '.join(self.trained_fields)}"
        )
        return head + "\n" + format_summary(self.params)


def estimate_m_em(
    pairs: Iterable[PairLevels],
    initial: MatchParams,
    *,
    exclude: Iterable[str] = (),
    initial_lambda: float = 0.1,
    max_iter: int = 200,
    tol: float = 1e-5,
    floor: float = PROBABILITY_FLOOR,
    version: str | None = None,
) -> EMResult:
    """Fellegi-Sunter EM with u fixed: estimates m for every field not excluded, and lambda.

    Stops when no m and not lambda moves by more than ``tol`` or after ``max_iter``.
    Levels never seen among the likely matches get ``floor`` (renormalised), so that no
    weight becomes infinite.
    """
    if not 0 < initial_lambda < 1:
        raise ValueError(f"initial_lambda={initial_lambda} is not in (0, 1).")
    excluded = set(exclude)
    unknown = excluded - set(L.FIELDS)
    if unknown:
        raise ValueError(f"Unknown fields to exclude: {', '.join(sorted(unknown))}.")
    fields = tuple(f for f in L.FIELDS if f not in excluded)

    patterns: Counter = Counter()
    for pair in pairs:
        levels = _as_mapping(pair)
        patterns[
            tuple(lvl if (lvl := levels.get(f)) is not None and L.is_scored(f, lvl) else None for f in fields)
        ] += 1
    n_pairs = sum(patterns.values())
    if not n_pairs:
        raise ValueError("EM needs at least one pair.")

    m = {f: {lvl: p.m for lvl, p in initial.levels[f].items()} for f in fields}
    u = {f: {lvl: p.u for lvl, p in initial.levels[f].items()} for f in fields}
    # Work in logs: a pattern multiplies a dozen probabilities, some of them 1e-6.
    log_u = {f: {lvl: math.log(v) for lvl, v in u[f].items()} for f in fields}
    lam = initial_lambda
    items = list(patterns.items())
    iterations, max_change, converged = 0, math.inf, False

    while iterations < max_iter:
        iterations += 1
        log_m = {f: {lvl: math.log(v) for lvl, v in m[f].items()} for f in fields}
        m_counts = {f: Counter() for f in fields}
        matched = 0.0
        log_lam, log_not = math.log(lam), math.log(1 - lam)
        for pattern, count in items:
            lm, lu = log_lam, log_not
            for f, lvl in zip(fields, pattern, strict=True):
                if lvl is not None:
                    lm += log_m[f][lvl]
                    lu += log_u[f][lvl]
            diff = lu - lm
            posterior = 1.0 / (1.0 + math.exp(diff)) if diff < 700 else 0.0
            weight = posterior * count
            matched += weight
            for f, lvl in zip(fields, pattern, strict=True):
                if lvl is not None:
                    m_counts[f][lvl] += weight
        new_lam = min(max(matched / n_pairs, floor), 1 - floor)
        max_change = abs(new_lam - lam)
        for f in fields:
            if sum(m_counts[f].values()) <= 0:
                continue  # never scored in these pairs: keep the initial m
            new_m = _normalised(m_counts[f], L.SCORED_LEVELS[f], floor)
            max_change = max(max_change, *(abs(new_m[lvl] - m[f][lvl]) for lvl in new_m))
            m[f] = new_m
        lam = new_lam
        if max_change < tol:
            converged = True
            break

    seen = [any(p[i] is not None for p in patterns) for i in range(len(fields))]
    trained = tuple(f for f, was_seen in zip(fields, seen, strict=True) if was_seen)
    levels = {
        f: ({lvl: LevelParams(m[f][lvl], p.u) for lvl, p in lv.items()} if f in trained else dict(lv))
        for f, lv in initial.levels.items()
    }
    params = replace(
        initial,
        levels=levels,
        version=version or f"{initial.version}+em",
        description=f"m by EM on {n_pairs} pairs from {initial.version}",
    )
    params.validate()
    return EMResult(
        params=params,
        lambda_=lam,
        iterations=iterations,
        converged=converged,
        max_change=max_change,
        n_pairs=n_pairs,
        n_patterns=len(patterns),
        trained_fields=trained,
    )


def random_pair_prior(
    lambda_blocked: float, n_blocked_pairs: int, n_records: int, *, blocking_recall: float = 1.0
) -> float:
    """The chance that two random records match, from EM's share among blocked pairs.

    All matches are (``blocking_recall`` of them) among the blocked pairs, so there are
    lambda x blocked / recall matching pairs out of n(n-1)/2 possible ones.
    """
    if n_records < 2:
        raise ValueError("Need at least two records.")
    if not 0 < blocking_recall <= 1:
        raise ValueError(f"blocking_recall={blocking_recall} is not in (0, 1].")
    matches = lambda_blocked * n_blocked_pairs / blocking_recall
    total = n_records * (n_records - 1) / 2
    return min(max(matches / total, 1e-12), 0.5)
