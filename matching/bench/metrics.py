"""Pairwise accuracy metrics: pure functions over sets of unordered record pairs.

A pair is a ``(low, high)`` tuple of record keys. The truth is every pair of records
of one cluster (one person); a prediction is a mapping pair -> probability.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass
from itertools import combinations

Pair = tuple[Hashable, Hashable]


def pair(a, b) -> Pair:
    return (a, b) if a <= b else (b, a)


def true_pairs(clusters: Mapping[Hashable, Hashable], *, cross_source: Mapping | None = None) -> set[Pair]:
    """Every pair of records sharing a cluster; with ``cross_source`` (record -> source)
    only pairs from two different sources (a linkage task)."""
    members: dict[Hashable, list] = defaultdict(list)
    for record, cluster in clusters.items():
        members[cluster].append(record)
    pairs = set()
    for records in members.values():
        for a, b in combinations(sorted(records), 2):
            if cross_source is None or cross_source[a] != cross_source[b]:
                pairs.add((a, b))
    return pairs


@dataclass(frozen=True)
class Scores:
    threshold: float
    predicted: int
    true_positives: int
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict:
        return asdict(self)


def _scores(threshold: float, predicted: int, tp: int, truth: int) -> Scores:
    precision = tp / predicted if predicted else 1.0
    recall = tp / truth if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(threshold, predicted, tp, precision, recall, f1)


def scores_at(predictions: Mapping[Pair, float], truth: set[Pair], threshold: float) -> Scores:
    """Precision, recall and F1 of the pairs whose probability is >= ``threshold``."""
    chosen = [p for p, probability in predictions.items() if probability >= threshold]
    return _scores(threshold, len(chosen), sum(p in truth for p in chosen), len(truth))


def best_threshold(predictions: Mapping[Pair, float], truth: set[Pair]) -> Scores:
    """The threshold with the best F1 (a reference: it is chosen with the truth in hand)."""
    ranked = sorted(predictions.items(), key=lambda item: -item[1])
    best = _scores(1.0, 0, 0, len(truth))
    tp = 0
    for i, (p, probability) in enumerate(ranked):
        tp += p in truth
        # Only cut between different probabilities: equal scores go in together.
        if i + 1 < len(ranked) and ranked[i + 1][1] == probability:
            continue
        candidate = _scores(probability, i + 1, tp, len(truth))
        if candidate.f1 > best.f1:
            best = candidate
    return best


def pair_completeness(retrieved: Iterable[Pair], truth: set[Pair]) -> float:
    """Share of the true pairs that candidate retrieval (blocking) produced at all."""
    if not truth:
        return 1.0
    return len(truth & set(retrieved)) / len(truth)


def pairs_between(
    groups: Mapping[Hashable, Iterable], linked: Iterable[tuple[Hashable, Hashable]]
) -> set[Pair]:
    """Record pairs across linked groups: ``groups`` maps a group (a twin person) to its
    records, ``linked`` lists group pairs (the twin pairs)."""
    out = set()
    for g1, g2 in linked:
        for a in groups.get(g1, ()):
            for b in groups.get(g2, ()):
                out.add(pair(a, b))
    return out


def transitive_pairs(links: Iterable[tuple[Hashable, Hashable]]) -> set[Pair]:
    """Every pair within the connected groups that ``links`` form: records the registry
    attached to one patient (b is a, c is a) are one another (b is c)."""
    parent: dict[Hashable, Hashable] = {}

    def root(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[root(a)] = root(b)
    groups: dict[Hashable, list] = defaultdict(list)
    for x in list(parent):
        groups[root(x)].append(x)
    return {(a, b) for members in groups.values() for a, b in combinations(sorted(members), 2)}


def merge_max(*predictions: Mapping[Pair, float]) -> dict[Pair, float]:
    """One prediction per pair: the highest probability any source gave it."""
    out: dict[Pair, float] = {}
    for mapping in predictions:
        for p, probability in mapping.items():
            if probability > out.get(p, -1.0):
                out[p] = probability
    return out
