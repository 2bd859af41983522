"""One data set, end to end: load through the write path, predict, score, compare."""

from __future__ import annotations

import time
from collections import Counter

from matching.bench import ours
from matching.bench.datasets import Dataset
from matching.bench.metrics import (
    Pair,
    best_threshold,
    merge_max,
    pair,
    pair_completeness,
    pairs_between,
    scores_at,
    transitive_pairs,
    true_pairs,
)
from matching.bench.registry import (
    dataset_fingerprint,
    loaded_report,
    refresh_name_frequencies,
    register_dataset,
    reset_registry,
    save_manifest,
)

SAMPLES = 8


def _system(
    probabilities: dict[Pair, float], truth: set[Pair], thresholds: dict, twins: set[Pair], seconds: float
) -> dict:
    return {
        "probable": scores_at(probabilities, truth, thresholds["probable"]).to_dict(),
        "certain": scores_at(probabilities, truth, thresholds["certain"]).to_dict(),
        "best": best_threshold(probabilities, truth).to_dict(),
        "pair_completeness": pair_completeness(probabilities, truth),
        "twins_certain": sum(probabilities.get(p, 0.0) >= thresholds["certain"] for p in twins)
        if twins
        else None,
        "seconds": round(seconds, 1),
    }


def _errors(
    predictions: ours.Predictions, truth: set[Pair], threshold: float, data_of: dict, door: dict
) -> dict:
    """Where the matcher goes wrong at ``threshold``: the commonest level patterns of the
    missed and the wrongly accepted pairs, and a few of each with their values. Pairs the
    write service linked at the door (a shared national id) are left out."""
    probabilities = predictions.probabilities
    missed = sorted(p for p in truth if probabilities.get(p, 0.0) < threshold and p not in door)
    wrong = sorted(p for p, v in probabilities.items() if v >= threshold and p not in truth)

    def pattern(p: Pair) -> str:
        levels = predictions.evidence.get(p)
        if levels is None:
            return "not retrieved"
        return ", ".join(
            f"{f}={lvl}" for f, lvl in sorted(levels.items()) if lvl not in ("exact", "same", "missing")
        )

    def sample(pairs: list[Pair]) -> list[dict]:
        step = max(1, len(pairs) // SAMPLES)
        return [
            {"pair": list(p), "probability": round(probabilities.get(p, 0.0), 6), "pattern": pattern(p),
             "a": data_of.get(p[0]), "b": data_of.get(p[1])}
            for p in pairs[::step][:SAMPLES]
        ]  # fmt: skip

    by_field: Counter = Counter()
    for p in missed:
        levels = predictions.evidence.get(p) or {}
        by_field.update(f"{f}={lvl}" for f, lvl in levels.items() if lvl not in ("exact", "same", "missing"))
    return {
        "threshold": threshold,
        "missed": len(missed),
        "not_retrieved": sum(p not in probabilities for p in missed),
        "wrongly_accepted": len(wrong),
        "missed_levels": by_field.most_common(12),
        "missed_patterns": Counter(pattern(p) for p in missed).most_common(8),
        "wrong_patterns": Counter(pattern(p) for p in wrong).most_common(8),
        "missed_samples": sample(missed),
        "wrong_samples": sample(wrong),
    }


def _reload_derived() -> None:
    """Rebuild what a code change may alter on an already-loaded registry: the search
    index rows (block keys) and the name frequencies. The patient rows stay."""
    from django.db import connection

    from matching.services import forget_cached_matcher
    from search.maintenance import rebuild_index

    rebuild_index()
    refresh_name_frequencies()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    forget_cached_matcher()


def evaluate(
    dataset: Dataset,
    *,
    with_splink: bool = True,
    splink_cached: dict | None = None,
    rescore: bool = False,
    trained: bool = False,
    progress: bool = True,
) -> dict:
    """Load (or, with ``rescore``, reuse the registry of an earlier load of exactly this
    data set), predict, score. ``splink_cached``: Splink's figures from an earlier run
    on the same records (they do not depend on this code), used instead of running it.
    ``trained`` adds a row for this matcher with EM-trained parameters."""
    from matching.bench.datasets import flat_fields

    started = time.perf_counter()
    if rescore:
        load = loaded_report(dataset)  # refuses another data set
        _reload_derived()
    else:
        reset_registry()
        load = register_dataset(dataset, progress=progress)
        save_manifest(dataset, load)
    predictions = ours.predict(load.patient_of, progress=progress, label=dataset.name)
    sources = {r.key: r.source for r in dataset.records}
    cross = dataset.link_type == "link"
    truth = true_pairs({r.key: r.cluster for r in dataset.records}, cross_source=sources if cross else None)

    def keep(p: Pair) -> bool:
        return not cross or sources[p[0]] != sources[p[1]]

    matcher = {p: v for p, v in predictions.probabilities.items() if keep(p)}
    # The write service refused these registrations outright: the national id is on
    # file already, and the conflict names its holder. An MPI would attach the record
    # to that patient; counted as a certain link (the matcher-only row leaves them out).
    # Two records attached to one holder are then one patient too (transitive).
    attached = [(a, b) for a, b in load.identifier_conflicts if b in sources]
    door = {p: 1.0 for p in transitive_pairs(attached) if keep(p)}
    registry = merge_max(matcher, door)
    members: dict[str, list[str]] = {}
    for r in dataset.records:
        members.setdefault(r.cluster, []).append(r.key)
    twins = pairs_between(members, dataset.twin_pairs)
    thresholds = predictions.thresholds
    ours_seconds = time.perf_counter() - started
    data_of = {r.key: flat_fields(r.data) for r in dataset.records}
    result = {
        "dataset": dataset.name,
        "fingerprint": dataset_fingerprint(dataset),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average": _load_average(),
        "rescored": rescore,
        "link_type": dataset.link_type,
        "records": len(dataset.records),
        "true_pairs": len(truth),
        "thresholds": thresholds,
        "load": {
            "registered": load.registered,
            "seconds": round(load.seconds, 1),
            "per_second": round(load.rate, 1),
            "refused": len(load.refused),
            "refused_samples": load.refused[:5],
            "identifier_conflicts": len(load.identifier_conflicts),
            "identifier_conflicts_true": sum(pair(a, b) in truth for a, b in load.identifier_conflicts),
        },
        "ours": _system(registry, truth, thresholds, twins, ours_seconds),
        "ours_matcher_only": _system(matcher, truth, thresholds, twins, predictions.seconds),
        "analysis": {
            "probable": _errors(predictions, truth, thresholds["probable"], data_of, door),
            "certain": _errors(predictions, truth, thresholds["certain"], data_of, door),
        },
    }
    result["ours"]["predicted_pairs_retrieved"] = len(registry)
    if trained:
        from matching.training import TrainingError

        try:
            result.update(_trained_rows(load, keep, truth, twins, door, dataset.name, progress))
        except TrainingError as exc:  # too few patients to train on: say so, keep the rest
            result["ours_trained_error"] = str(exc)
    if splink_cached is not None:
        result["splink"] = {**splink_cached, "cached": True}
    elif with_splink:
        from matching.bench.splink_side import run_splink

        splink = run_splink(dataset)
        result["splink"] = _system(splink.probabilities, truth, thresholds, twins, splink.seconds)
        result["splink"]["predicted_pairs_retrieved"] = len(splink.probabilities)
        result["splink"]["columns"] = list(splink.columns)
        result["splink"]["probability_two_random_records_match"] = splink.probability_two_random_records_match
        result["splink"]["measured_at"] = result["measured_at"]
    return result


def _trained_rows(load, keep, truth, twins, door, label: str, progress: bool) -> dict:
    """This matcher with parameters EM-trained on the loaded registry (``train_matcher``'s
    training, nothing saved): the like-for-like row next to Splink, which is EM-trained
    on the same records. Same candidate retrieval, same thresholds."""
    from matching.model import MatchModel
    from matching.services import MIN_POPULATION
    from matching.training import TrainingOptions, train

    started = time.perf_counter()
    training = train(options=TrainingOptions(em_pairs=50_000))
    model = MatchModel(training.params, population=max(load.registered, MIN_POPULATION))
    predictions = ours.predict(load.patient_of, progress=progress, label=f"{label} (EM)", model=model)
    matcher = {p: v for p, v in predictions.probabilities.items() if keep(p)}
    registry = merge_max(matcher, door)
    thresholds = predictions.thresholds
    seconds = time.perf_counter() - started
    return {
        "ours_trained": _system(registry, truth, thresholds, twins, seconds),
        "ours_trained_matcher_only": _system(matcher, truth, thresholds, twins, predictions.seconds),
        "training": {
            "sessions": training.stats["sessions"],
            "m": {
                f: {lvl: round(p.m, 5) for lvl, p in lv.items()} for f, lv in training.params.levels.items()
            },
            "u": {
                f: {lvl: round(p.u, 7) for lvl, p in lv.items()} for f, lv in training.params.levels.items()
            },
        },
    }


def _load_average() -> list[float] | None:
    import os

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
