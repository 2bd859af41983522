"""Training the match model from the registry's own data (``manage.py train_matcher``).

As Splink does (``matching.em`` holds the pure estimators):

1. **u** from random pairs: a seeded random pool of live patients, random pairs drawn
   from it, compared field by field. Almost all are different people.
2. **m** by EM with u fixed, over pairs that blocking finds (the SQL pairs of
   ``matching.pairs``, a seeded sample), once per *session*: the pairs of one block,
   leaving out the fields that block required to agree (on those pairs they agree by
   construction and say nothing about m). Each field's m is the average over the
   sessions that trained it.
3. The prior is kept from the base version (the active one): EM's share of matches
   among blocked pairs depends on how wide the blocks are. The estimate it implies
   (``em.random_pair_prior``) is reported, and used with ``use_estimated_prior``.

Training reads only; ``save_version`` stores the result as a new ``MatchModelVersion``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace

from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from matching import levels as L
from matching import pairs as pair_sql
from matching.em import EMResult, estimate_m_em, estimate_u, random_pair_prior, with_u
from matching.model import MatchModel
from matching.models import MatchModelVersion
from matching.params import LevelParams, MatchParams
from matching.services import active_matcher, forget_cached_matcher
from patients.queries import load_patient_data

MIN_PATIENTS = 500
LOAD_BATCH = 2000


class TrainingError(Exception):
    """Training cannot run or produced nothing usable; the message says why."""


@dataclass(frozen=True)
class Session:
    block: str
    exclude: tuple[str, ...]  # the fields this block requires to agree


# name_pair requires the (phonetic) names to agree, date_initial the birth date:
# together they train every field at least once. Also left out:
# * gender in the name-pair session: it follows the given name, so on pairs that
#   share one it agrees far more often than u says, and EM then mistakes "same
#   gender" for "same person" (measured: lambda 0.78, birth-date m 0.07);
# * email in the name-pair session, for the same reason: local parts are made of the
#   name (john.smith@, jsmith80@), so namesakes' addresses are "close". EM took those
#   strangers for one person with two birth dates (measured on 40,000 benchmark
#   patients: birth-date exact m 0.41, disagree m 0.41, where the truth is ~0.7 / ~0.05);
# * identifier everywhere: two live records never share an identifier value (the
#   database forbids it), so EM never sees "exact" and would drive its m to the floor.
#   Its m stays as the base version has it.
SESSIONS = (
    Session("name_pair", exclude=(L.FAMILY, L.GIVEN, L.GENDER, L.EMAIL, L.IDENTIFIER)),
    Session("date_initial", exclude=(L.BIRTH_DATE, L.IDENTIFIER)),
)


@dataclass(frozen=True)
class TrainingOptions:
    seed: int = 1
    u_records: int = 10_000  # the random pool random pairs are drawn from
    u_pairs: int = 200_000
    em_pairs: int = 20_000  # per session
    window: int = pair_sql.DEFAULT_WINDOW
    use_estimated_prior: bool = False


@dataclass(frozen=True)
class TrainingResult:
    params: MatchParams
    base_version: int
    sessions: tuple[tuple[Session, EMResult, int], ...]  # (session, result, blocked pairs in all)
    stats: dict

    def summary(self) -> str:
        parts = [f"Session {s.block} (without {', '.join(s.exclude)}): {em.summary().splitlines()[0]}"
                 for s, em, _ in self.sessions]  # fmt: skip
        from matching.params import format_summary

        return "\n".join([*parts, "", format_summary(self.params)])


def live_patient_ids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT patient_id FROM search_patientindex WHERE NOT merged ORDER BY patient_id")
        return [row[0] for row in cursor.fetchall()]


def _prepared(model: MatchModel, ids) -> dict:
    ids = sorted(set(ids))
    out = {}
    for start in range(0, len(ids), LOAD_BATCH):
        for pid, data in load_patient_data(ids[start : start + LOAD_BATCH]).items():
            out[pid] = model.prepare(data)
    return out


def random_comparisons(model: MatchModel, ids: list[int], options: TrainingOptions, rng: random.Random):
    pool = rng.sample(ids, min(options.u_records, len(ids)))
    prepared = _prepared(model, pool)
    keys = sorted(prepared)
    for _ in range(options.u_pairs):
        a, b = rng.sample(keys, 2)
        yield model.compare(prepared[a], prepared[b])


def blocked_comparisons(model: MatchModel, pairs: list[tuple[int, int]]) -> list:
    prepared = _prepared(model, [p for pair in pairs for p in pair])
    return [model.compare(prepared[a], prepared[b]) for a, b in pairs if a in prepared and b in prepared]


def _combine_m(base: MatchParams, results: list[EMResult]) -> dict[str, dict[str, LevelParams]]:
    """Each field's m: the average over the sessions that trained it (u from ``base``)."""
    levels = {}
    for field, lv in base.levels.items():
        trained = [r.params.levels[field] for r in results if field in r.trained_fields]
        if not trained:
            levels[field] = dict(lv)
            continue
        m = {lvl: sum(t[lvl].m for t in trained) / len(trained) for lvl in lv}
        total = sum(m.values())
        levels[field] = {lvl: LevelParams(m[lvl] / total, p.u) for lvl, p in lv.items()}
    return levels


def train(*, options: TrainingOptions, log=lambda line: None) -> TrainingResult:
    started = time.perf_counter()
    ids = live_patient_ids()
    if len(ids) < MIN_PATIENTS:
        raise TrainingError(
            f"Only {len(ids)} live patients: training needs at least {MIN_PATIENTS} "
            "(random pairs and blocked pairs would be too few to estimate anything). "
            "Keep the current model."
        )
    rng = random.Random(options.seed)
    base_version, model = active_matcher()
    log(f"Base: match model v{base_version.version}; {len(ids):,} live patients.")

    phase = time.perf_counter()
    u = estimate_u(random_comparisons(model, ids, options, rng))
    with_random_u = with_u(model.params, u)
    u_seconds = time.perf_counter() - phase
    log(f"u from {options.u_pairs:,} random pairs in {u_seconds:.1f} s.")

    phase = time.perf_counter()
    try:
        pair_stats = pair_sql.build_pairs(window=options.window)
        sessions = []
        for number, session in enumerate(SESSIONS):
            total = pair_sql.count_pairs(session.block)
            sample = pair_sql.sample_pairs(
                block=session.block, count=options.em_pairs, seed=options.seed + number
            )
            if not sample:
                log(f"Session {session.block}: no pairs, skipped.")
                continue
            em = estimate_m_em(blocked_comparisons(model, sample), with_random_u, exclude=session.exclude)
            log(f"Session {session.block}: {em.summary().splitlines()[0]}")
            sessions.append((session, em, total))
    finally:
        pair_sql.drop_pairs()
    if not sessions:
        raise TrainingError("Blocking found no pairs to train m on; keep the current model.")
    em_seconds = time.perf_counter() - phase

    levels = _combine_m(with_random_u, [em for _, em, _ in sessions])
    estimates = {
        s.block: random_pair_prior(em.lambda_, total, len(ids)) for s, em, total in sessions if total
    }
    prior_estimate = min(estimates.values()) if estimates else None
    params = replace(
        with_random_u,
        levels=levels,
        version="trained",
        description=f"u from {options.u_pairs} random pairs, m by EM on blocked pairs (seed {options.seed})",
    )
    if options.use_estimated_prior and prior_estimate:
        params = replace(
            params, prior=prior_estimate, expected_duplicates_per_record=prior_estimate * len(ids)
        )
    params.validate()
    stats = {
        "seed": options.seed,
        "patients": len(ids),
        "base_version": base_version.version,
        "u_records": min(options.u_records, len(ids)),
        "u_pairs": options.u_pairs,
        "window": options.window,
        "blocked_pairs": pair_stats.pairs,
        "sessions": [
            {
                "block": s.block,
                "exclude": list(s.exclude),
                "pairs_in_block": total,
                "pairs_used": em.n_pairs,
                "lambda": em.lambda_,
                "iterations": em.iterations,
                "converged": em.converged,
                "trained_fields": list(em.trained_fields),
            }
            for s, em, total in sessions
        ],
        "prior_estimates": estimates,
        "prior_used": params.prior,
        "expected_duplicates_per_record": params.expected_duplicates_per_record,
        "seconds": {
            "u": round(u_seconds, 2),
            "em": round(em_seconds, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }
    return TrainingResult(
        params=params, base_version=base_version.version, sessions=tuple(sessions), stats=stats
    )


@transaction.atomic
def save_version(*, result: TrainingResult, activate: bool, actor=None) -> MatchModelVersion:
    """Store the trained parameters as the next version; ``activate`` makes it the one
    in use and deactivates the previous one in the same transaction."""
    # Lock the active row first: two trainings saving at once queue here. NO KEY: the
    # foreign-key checks of candidates opened meanwhile (they point at it) do not wait.
    current = list(MatchModelVersion.objects.select_for_update(no_key=True).filter(active=True))
    number = (MatchModelVersion.objects.aggregate(top=Max("version"))["top"] or 0) + 1
    params = replace(result.params, version=f"trained-v{number}")
    if activate:
        for previous in current:
            previous.active = False
            previous._history_user = actor
            previous._change_reason = f"Replaced by trained v{number}"
            previous.save()
    version = MatchModelVersion(
        version=number,
        params=params.to_dict(),
        active=activate,
        notes=f"Trained from v{result.base_version}: {params.description}.\n\n{result.summary()}",
        training=result.stats,
        created_by=actor,
    )
    version._history_user = actor
    version._change_reason = "Trained by train_matcher"
    try:
        with transaction.atomic():
            version.save()
    except IntegrityError as exc:
        raise TrainingError("Another model version was saved at the same time; run again.") from exc
    # The parsed model is cached per process; this one must not keep using the old.
    transaction.on_commit(forget_cached_matcher)
    return version
