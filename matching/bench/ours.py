"""This matcher's predictions over a loaded registry: what match_patient would say.

For every registered record: the same candidate retrieval (``find_candidates``, its
own record excluded, CANDIDATE_POOL deep) and the same scoring (the active model,
term frequencies from the registry) as ``matching.services.match_patient``. Pairs are
unordered; a pair found from both sides keeps its higher probability.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from matching.bench.metrics import Pair, pair
from matching.model import MatchModel
from matching.services import CANDIDATE_POOL, active_matcher, term_frequencies
from patients.queries import load_patient_data
from search.blocking import find_candidates


@dataclass
class Predictions:
    probabilities: dict[Pair, float] = field(default_factory=dict)  # every retrieved pair
    grades: dict[Pair, str] = field(default_factory=dict)
    evidence: dict[Pair, dict] = field(default_factory=dict)  # levels of each pair's best result
    seconds: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)


def predict(
    patient_of: dict[str, int], *, progress: bool = True, label: str = "", model: MatchModel | None = None
) -> Predictions:
    """Score every registered record against the registry; keys are record keys.
    ``model``: another parameter set than the active one (the EM-trained row)."""
    if model is None:
        _, model = active_matcher()
    key_of = {pid: key for key, pid in patient_of.items()}
    ids = sorted(key_of)
    out = Predictions(thresholds=dict(model.params.thresholds))
    started = time.perf_counter()
    stored = {}
    for start in range(0, len(ids), 2000):
        stored.update(load_patient_data(ids[start : start + 2000]))
    prepared = {pid: model.prepare(data) for pid, data in stored.items()}
    for n, pid in enumerate(ids, 1):
        probe = stored.get(pid)
        if probe is None:
            continue
        tf = term_frequencies(probe)
        for candidate in find_candidates(probe, limit=CANDIDATE_POOL, exclude=pid):
            other = prepared.get(candidate.patient_id)
            if other is None or candidate.patient_id not in key_of:
                continue
            result = model.match(prepared[pid], other, tf=tf)
            p = pair(key_of[pid], key_of[candidate.patient_id])
            if result.probability > out.probabilities.get(p, -1.0):
                out.probabilities[p] = result.probability
                out.grades[p] = str(result.grade)
                out.evidence[p] = {e.field: e.level for e in result.evidence}
        if progress and (n % 500 == 0 or n == len(ids)):
            rate = n / (time.perf_counter() - started)
            print(
                f"\r  {label}: scored {n}/{len(ids)} records ({rate:.0f}/s)",
                end="",
                file=sys.stderr,
                flush=True,
            )
    if progress:
        print(file=sys.stderr)
    out.seconds = time.perf_counter() - started
    return out
