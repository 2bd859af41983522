"""find_duplicates: whole-registry detection with the matcher's own retrieval and scoring."""

import json
import re
from collections import defaultdict
from datetime import date
from io import StringIO
from itertools import combinations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from matching import batch_writes
from matching import pairs as pair_sql
from matching.batch_records import load_comparison_data
from matching.model import MatchGrade
from matching.models import CandidateStatus, MatchCandidate
from matching.prepare import prepare
from matching.services import active_matcher, mark_not_duplicate, match_patient, matching_disabled
from patients.demo import generate_demo
from patients.queries import load_patient_data
from patients.services import delete_patient, register_patient
from search.blocking import find_candidates
from tests.factories import patient_data

pytestmark = pytest.mark.django_db
AT_LEAST_POSSIBLE = (MatchGrade.CERTAIN, MatchGrade.PROBABLE, MatchGrade.POSSIBLE)


@pytest.fixture
def demo():
    """200 demo records registered without matching; the planted truth by patient id."""
    records = {}
    with matching_disabled():
        for record in generate_demo(200, seed=11):
            records[register_patient(data=record.data).pk] = record
    by_person = defaultdict(list)
    for pk, record in records.items():
        by_person[record.person_id].append(pk)
    planted = {tuple(sorted(p)) for ids in by_person.values() for p in combinations(ids, 2)}
    twins = set()
    for pk, record in records.items():
        if record.twin_person_id is not None:
            for other in by_person[record.twin_person_id]:
                twins.add(tuple(sorted((pk, other))))
    assert planted and twins and not MatchCandidate.objects.exists()
    return {"records": records, "planted": planted, "twins": twins}


def _run(tmp_path, *args, **options):
    out = StringIO()
    call_command(
        "find_duplicates",
        *args,
        workers=0,
        checkpoint=str(tmp_path / "checkpoint.json"),
        stdout=out,
        **options,
    )
    return out.getvalue()


def _scored(output: str) -> int:
    """Pairs scored in the whole pass, from the summary."""
    return int(re.search(r"pairs generated [\d,]+, scored ([\d,]+)", output).group(1).replace(",", ""))


def _candidate_pairs(**filters) -> set[tuple[int, int]]:
    return set(MatchCandidate.objects.filter(**filters).values_list("patient_a_id", "patient_b_id"))


def test_find_duplicates_finds_planted_pairs_scores_as_match_patient_and_keeps_decisions(
    demo, tmp_path, steward
):
    output = _run(tmp_path)

    found = _candidate_pairs(grade__in=AT_LEAST_POSSIBLE)
    recall = len(found & demo["planted"]) / len(demo["planted"])
    assert recall >= 0.9, f"recall {recall:.3f} of {len(demo['planted'])} planted pairs"
    assert not _candidate_pairs(grade=MatchGrade.CERTAIN) & demo["twins"]
    assert MatchCandidate.objects.filter(status=CandidateStatus.OPEN).count() == len(found)
    assert "Duplicate detection complete." in output
    assert "certain" in output and "possible" in output and "elapsed" in output
    assert "rejected early by the weight bound" in output
    assert not (tmp_path / "checkpoint.json").exists()  # a complete pass leaves no checkpoint

    # The same scores as the per-probe matcher (same model, same term frequencies).
    data = load_patient_data(demo["records"])
    checked = 0
    for candidate in MatchCandidate.objects.order_by("patient_a_id", "patient_b_id")[:20]:
        outcomes = match_patient(data[candidate.patient_a_id], limit=50, exclude=candidate.patient_a_id)
        same = [o for o in outcomes if o.patient_id == candidate.patient_b_id]
        if same:  # the per-probe retrieval found it too
            assert same[0].probability == pytest.approx(candidate.probability, abs=1e-9)
            assert same[0].grade == candidate.grade
            checked += 1
    assert checked >= 15

    # A steward's decision survives the next pass.
    decided = MatchCandidate.objects.order_by("-probability", "id").first()
    mark_not_duplicate(candidate=decided, actor=steward, reason="Checked: two people")
    again = _run(tmp_path)
    decided.refresh_from_db()
    assert decided.status == CandidateStatus.NOT_DUPLICATE
    assert "decided pairs left as decided: 1" in again
    assert decided.history.filter(history_change_reason="Re-scored by the matcher").count() == 0


def test_batch_retrieval_covers_what_find_candidates_finds(demo):
    """The SQL pairs meet (nearly) every planted pair the per-probe retrieval meets."""
    data = load_patient_data(demo["records"])
    per_probe = set()
    for pk, record in data.items():
        for candidate in find_candidates(record, exclude=pk):
            per_probe.add(tuple(sorted((pk, candidate.patient_id))))
    pair_sql.build_pairs()
    batch = set()
    after = 0
    while chunk := pair_sql.pair_chunk(after=after, patients=500):
        batch |= {(a, b) for a, b, _ in chunk}
        after = chunk[-1][0]
    pair_sql.drop_pairs()

    planted_per_probe = per_probe & demo["planted"]
    assert len(batch & planted_per_probe) >= 0.97 * len(planted_per_probe)
    assert len(batch & demo["planted"]) >= 0.95 * len(demo["planted"])


def test_interrupted_pass_resumes_without_scoring_a_pair_twice(demo, tmp_path):
    checkpoint = tmp_path / "checkpoint.json"
    first = _run(tmp_path, chunk_size=10, limit_chunks=2)
    assert "stopped" in first
    saved = json.loads(checkpoint.read_text())
    scored_before = saved["totals"]["pairs_scored"]
    assert saved["last_patient_id"] > 0 and scored_before > 0

    second = _run(tmp_path, chunk_size=10)
    assert "Resuming after patient id" in second and "complete" in second
    resumed = set(MatchCandidate.objects.values_list("patient_a_id", "patient_b_id", "probability"))

    full = _run(tmp_path, "--restart", chunk_size=10)
    scored_full, scored_resumed = _scored(full), _scored(second)
    # The resumed pass (both runs together) scored exactly the pairs of one full pass.
    assert scored_resumed == scored_full
    assert set(MatchCandidate.objects.values_list("patient_a_id", "patient_b_id", "probability")) == resumed


def test_checkpoint_of_another_model_version_is_refused(tmp_path):
    (tmp_path / "checkpoint.json").write_text(json.dumps({"last_patient_id": 5, "model_version": 999}))
    with pytest.raises(CommandError, match="--restart"):
        _run(tmp_path)


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(CommandError, match="--window"):
        _run(tmp_path, window=0)


@pytest.mark.django_db(transaction=True)
def test_worker_processes_find_a_typo_duplicate(tmp_path):
    with matching_disabled():
        original = register_patient(data=patient_data(family="Smith", given=("John",), mrn="77"))
        register_patient(
            data=patient_data(family="Okafor", given=("Ada",), mrn="78", phone="+1 508 555 0199")
        )
        duplicate = register_patient(data=patient_data(family="Smyth", given=("Jon",), mrn="79"))
    out = StringIO()

    call_command("find_duplicates", workers=2, checkpoint=str(tmp_path / "c.json"), stdout=out)

    candidate = MatchCandidate.objects.get()
    assert (candidate.patient_a_id, candidate.patient_b_id) == (original.pk, duplicate.pk)
    assert candidate.grade in AT_LEAST_POSSIBLE and candidate.blocks
    # Records prepared by the thread alongside the pair SQL (committed data: transaction=True).
    assert "3 records loaded and prepared" in out.getvalue()
    assert "alongside the pair SQL: True" in out.getvalue() and "complete" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_failed_write_stops_the_pass_at_the_last_committed_chunk(tmp_path, monkeypatch):
    """With workers, chunks are written by a thread of their own while the next are read."""
    people = (("Smith", "John", "Smyth", "Jon"), ("Okafor", "Ada", "Okafor", "Adah"))
    with matching_disabled():
        originals = [
            register_patient(data=patient_data(family=f, given=(g,), mrn=f"7{i}", phone=f"+1 617 555 01{i}0"))
            for i, (f, g, _, _) in enumerate(people)
        ]
        duplicates = [
            register_patient(data=patient_data(family=f, given=(g,), mrn=f"8{i}", phone=f"+1 617 555 01{i}0"))
            for i, (_, _, f, g) in enumerate(people)
        ]
    planted = {(o.pk, d.pk) for o, d in zip(originals, duplicates, strict=True)}
    writes = []

    def second_write_fails(**kwargs):
        writes.append(kwargs["scored"])
        if len(writes) == 2:
            raise RuntimeError("the disk is full")
        return batch_writes.write_chunk(**kwargs)

    monkeypatch.setattr("matching.batch.write_chunk", second_write_fails)
    checkpoint = tmp_path / "c.json"
    with pytest.raises(RuntimeError, match="the disk is full"):
        call_command(
            "find_duplicates", workers=2, chunk_size=1, checkpoint=str(checkpoint), stdout=StringIO()
        )

    # The first chunk is committed and checkpointed; nothing after it.
    assert json.loads(checkpoint.read_text())["last_patient_id"] == originals[0].pk
    assert _candidate_pairs() == {(originals[0].pk, duplicates[0].pk)}

    monkeypatch.undo()
    out = StringIO()
    call_command("find_duplicates", workers=2, chunk_size=1, checkpoint=str(checkpoint), stdout=out)
    assert "Resuming after patient id" in out.getvalue() and "complete" in out.getvalue()
    assert _candidate_pairs() == planted


def test_an_empty_registry_completes_with_nothing_to_score(tmp_path):
    output = _run(tmp_path)
    assert "0 candidate pairs to score" in output and "complete" in output
    assert _scored(output) == 0 and not MatchCandidate.objects.exists()


def _all_pairs() -> dict[tuple[int, int], tuple[str, ...]]:
    pair_sql.build_pairs()
    found, after = {}, 0
    while chunk := pair_sql.pair_chunk(after=after, patients=100):
        found.update({(a, b): blocks for a, b, blocks in chunk})
        after = chunk[-1][0]
    pair_sql.drop_pairs()
    return found


def test_pairs_follow_the_block_definitions():
    def add(family, given, born, **extra):
        with matching_disabled():
            extra.setdefault("phone", None)
            data = patient_data(family=family, given=given, birth_date=born, mrn=None, **extra)
            return register_patient(data=data).pk

    john = add("Smith", ("John",), date(1980, 3, 4))
    next_year = add("Smyth", ("Jon",), date(1981, 3, 4), postal_code="90210")
    swapped = add("John", ("Smith",), date(1975, 1, 1), postal_code="90211")
    two_years = add("Smith", ("Amy",), date(1982, 6, 6), postal_code="90212", gender="female")
    same_phone = add("Okafor", ("Ada",), date(1950, 1, 1), postal_code="90213", phone="+1 617 555 0100")
    phone_twin = add("Nwosu", ("Obi",), date(1960, 2, 2), postal_code="90214", phone="+1 617 555 0100")

    pairs = _all_pairs()

    assert {"family_year", "name_pair"} <= set(pairs[(john, next_year)])
    assert "swapped_names" in pairs[(john, swapped)]
    assert "family_year" not in pairs.get((john, two_years), ())  # years two apart
    assert pairs[(same_phone, phone_twin)] == ("phone",)
    assert all(a < b for a, b in pairs)


def test_lean_records_prepare_exactly_as_the_full_patient_data(demo):
    """The batch's values()-based loader gives the comparators the same records."""
    ids = sorted(demo["records"])
    with matching_disabled():
        deleted = register_patient(data=patient_data(family="Gone", mrn="gone-1"))
        delete_patient(patient=deleted, reason="test")

    lean = load_comparison_data(ids[0], deleted.pk)
    full = load_patient_data(ids)

    assert set(lean) == set(full)  # the soft-deleted patient is left out
    assert all(prepare(lean[pk]) == prepare(full[pk]) for pk in ids)


def test_batched_writes_record_history_and_rescore_open_candidates(demo, tmp_path):
    _run(tmp_path)
    opened = MatchCandidate.objects.count()
    assert opened > 20
    history = MatchCandidate.history.model.objects
    assert history.filter(history_change_reason=batch_writes.OPENED).count() == opened
    assert history.filter(history_type="+").count() == opened

    again = _run(tmp_path)

    # The same data scores the same: no candidate is written again, no history row added.
    assert not history.filter(history_change_reason=batch_writes.RESCORED).exists()
    assert f"left untouched: {opened:,}" in again
    assert MatchCandidate.objects.count() == opened and "closed: 0" in again
    assert not MatchCandidate.objects.exclude(status=CandidateStatus.OPEN).exists()

    # A score that differs from the stored one (an older model's, say) is re-written.
    stale = MatchCandidate.objects.order_by("pk").first()
    MatchCandidate.objects.filter(pk=stale.pk).update(probability=0.5, weight=0.0)
    third = _run(tmp_path)
    rescored = history.filter(history_change_reason=batch_writes.RESCORED)
    assert list(rescored.values_list("id", flat=True)) == [stale.pk]
    stale.refresh_from_db()
    assert stale.probability != 0.5 and f"left untouched: {opened - 1:,}" in third


def test_open_candidate_scored_below_possible_is_closed_other_pairs_left_alone(tmp_path):
    def add(family, given, born, **extra):
        with matching_disabled():
            return register_patient(data=patient_data(family=family, given=given, birth_date=born, **extra))

    # Same family name, birth years one apart: the family_year block pairs them; the
    # model does not (different given name, birth date, postcode, phone).
    john = add("Smith", ("John",), date(1980, 3, 4), mrn="s1", phone="+1 617 555 0100")
    mary = add("Smith", ("Mary",), date(1981, 9, 20), mrn="s2", phone=None, postal_code="90210")
    # Shares no key with John: the batch never meets the pair.
    ada = add("Okafor", ("Ada",), date(1950, 1, 1), mrn="o1", phone=None, postal_code="10001")
    version, _ = active_matcher()

    def open_candidate(a, b):
        return MatchCandidate.objects.create(
            patient_a=a, patient_b=b, probability=0.5, weight=0.0, grade=MatchGrade.POSSIBLE,
            evidence={}, blocks=["family_year"], model_version=version,
        )  # fmt: skip

    stale, unmet = open_candidate(john, mary), open_candidate(john, ada)

    output = _run(tmp_path)

    stale.refresh_from_db()
    unmet.refresh_from_db()
    assert stale.status == CandidateStatus.DISMISSED and stale.note == batch_writes.CLOSED
    assert stale.decided_by is None and stale.decided_at is not None
    assert stale.history.first().history_change_reason == batch_writes.CLOSED
    assert unmet.status == CandidateStatus.OPEN  # not generated by the blocks: not judged
    assert "closed: 1" in output


def test_decided_pairs_stay_decided_through_the_bulk_path(demo, tmp_path, steward):
    _run(tmp_path)
    decided = list(MatchCandidate.objects.order_by("-probability", "id")[:3])
    for candidate in decided:
        mark_not_duplicate(candidate=candidate, actor=steward, reason="Checked: two people")
    before = {c.pk: c.history.count() for c in decided}

    output = _run(tmp_path)

    for candidate in decided:
        candidate.refresh_from_db()
        assert candidate.status == CandidateStatus.NOT_DUPLICATE
        assert candidate.history.count() == before[candidate.pk]  # not touched at all
    assert "decided pairs left as decided: 3" in output


def test_a_conflicting_insert_falls_back_to_record_candidate_pair_by_pair():
    """A unique-constraint error in the bulk insert (here: one pair twice, as a concurrent
    registration opening the pair would cause) rolls the chunk back and writes it again
    through record_candidate."""
    with matching_disabled():
        john = register_patient(data=patient_data(family="Smith", given=("John",), mrn="f1"))
        jon = register_patient(data=patient_data(family="Smith", given=("Jon",), mrn="f2"))
    version, model = active_matcher()
    data = load_patient_data([john.pk, jon.pk])
    result = model.match(data[john.pk], data[jon.pk])
    assert result.grade in AT_LEAST_POSSIBLE
    pair = (john.pk, jon.pk, ("family_year",), result)

    counts = batch_writes.write_chunk(scored=[pair[:2]], found=[pair, pair], version=version)

    candidate = MatchCandidate.objects.get()
    assert (candidate.patient_a_id, candidate.patient_b_id) == (john.pk, jon.pk)
    assert candidate.probability == pytest.approx(result.probability)
    assert sum(counts.opened.values()) == 1 and sum(counts.refreshed.values()) == 1
    reasons = list(candidate.history.order_by("history_id").values_list("history_change_reason", flat=True))
    assert reasons == ["Opened by the matcher"]  # the second time, the same score: nothing written


def test_match_patient_early_reject_keeps_every_pair_the_full_score_grades_possible(demo):
    """``match_patient`` skips full scoring of candidates the staged bound proves
    certainly-not; with ``min_grade=certainly-not`` it scores them all. The two agree on
    every candidate at ``possible`` or above, probability and evidence included."""
    data = load_patient_data(demo["records"])
    kept = skipped = 0
    for pk in sorted(data)[:80]:
        everything = match_patient(data[pk], limit=50, min_grade=MatchGrade.CERTAINLY_NOT, exclude=pk)
        full = [o for o in everything if o.grade in AT_LEAST_POSSIBLE]
        fast = match_patient(data[pk], limit=50, exclude=pk)
        assert [(o.patient_id, o.result) for o in fast] == [(o.patient_id, o.result) for o in full]
        kept += len(fast)
        skipped += len(everything) - len(full)
    assert kept >= 20 and skipped >= 10  # both paths were exercised


def test_staged_reject_for_keeps_one_template_per_model_and_tf_fields():
    from matching.model import MatchModel
    from matching.prefilter import staged_reject_for

    model = MatchModel(population=100_000)
    rare, common = {"family": {"okafor": 1e-6}}, {"family": {"okafor": 0.5}}
    a, b = staged_reject_for(model, rare), staged_reject_for(model, common)
    assert a is not b and a.tf is rare and b.tf is common
    assert a._w is b._w  # the template's tables, not rebuilt
    assert staged_reject_for(model, None)._rest_after_1 < a._rest_after_1  # tf raises the bound


def test_a_pass_computes_the_prior_for_the_index_size_counted_not_estimated(monkeypatch):
    """The planner's estimate moves with every ANALYZE; a pass counts, so the same data
    is graded the same pass after pass (a match keeps the estimate: no scan per probe)."""
    from django.db import connection

    from matching import services
    from matching.batch import prepare_scoring

    monkeypatch.setattr(services, "MIN_POPULATION", 1)  # a test-sized registry
    for i in range(3):
        register_patient(data=patient_data(family=f"Population{i}", given=("Ann",), mrn=f"P{i}"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'search_patientindex'")
        (estimate,) = cursor.fetchone()
    # The estimate is whatever the last ANALYZE saw (here: not these uncommitted rows).
    assert services.index_population() == max(int(estimate), 1)
    assert services.index_population(exact=True) == 3

    _, model, _ = prepare_scoring(log=lambda message: None)
    _, online = active_matcher()
    params = online.params
    assert model.params == params
    assert model.prior == pytest.approx(params.expected_duplicates_per_record / 3)


def test_update_with_history_writes_the_rows_bulk_update_with_history_writes(steward):
    """The batch's COPY-based update (patients.copyrows) against simple-history's own:
    the same row values and the same history rows, JSON, arrays and keys included."""
    from django.utils import timezone
    from simple_history.utils import bulk_update_with_history

    from patients.copyrows import update_with_history

    with matching_disabled():
        people = [register_patient(data=patient_data(family="Copy", given=(g,), mrn=g)) for g in "ABCD"]
    version, _ = active_matcher()
    ours, theirs = (
        MatchCandidate.objects.create(
            patient_a=a, patient_b=b, probability=0.4, weight=1.0, grade=MatchGrade.POSSIBLE,
            evidence={}, blocks=["family_year"], model_version=version,
        )
        for a, b in (people[:2], people[2:])
    )  # fmt: skip
    now = timezone.now()
    fields = [*batch_writes.SCORED_FIELDS, "status", "decided_at", "decided_by"]
    for candidate in (ours, theirs):
        candidate.probability, candidate.weight, candidate.grade = 0.97, 7.25, MatchGrade.PROBABLE
        candidate.evidence = {"evidence": [{"field": "family", "value_a": "Müller", "weight": -1.5}]}
        candidate.evidence["n"] = None
        candidate.blocks, candidate.note, candidate.updated_at = ["name_postcode", "phone"], "Ré-scored", now
        candidate.status, candidate.decided_at, candidate.decided_by = CandidateStatus.DISMISSED, now, steward

    update_with_history([ours], MatchCandidate, fields, user=steward, reason="why", when=now)
    bulk_update_with_history(
        [theirs], MatchCandidate, fields, default_user=steward, default_change_reason="why", default_date=now
    )

    def stored(candidate, model, skip):
        newest = "-pk" if model is MatchCandidate else "-history_id"
        values = model.objects.filter(id=candidate.pk).order_by(newest).values().first()
        return {k: v for k, v in values.items() if k not in skip}

    pair = {"id", "uuid", "patient_a_id", "patient_b_id", "created_at"}
    assert stored(ours, MatchCandidate, pair) == stored(theirs, MatchCandidate, pair)
    history = MatchCandidate.history.model
    assert stored(ours, history, {*pair, "history_id"}) == stored(theirs, history, {*pair, "history_id"})
    assert ours.history.first().history_type == "~" and ours.history.count() == 2
