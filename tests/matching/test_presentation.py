"""Pure presentation code of the steward pages: the chart geometry, evidence tones, the
merge form's translation into merge choices, and merge changes in words."""

from datetime import date

import pytest

from matching.charts import daily_bar_chart, days_ending
from matching.forms import MergeForm
from matching.sidebyside import EvidenceItem, Row, describe_changes, evidence_items
from patients.models import Patient


def test_days_ending_counts_back_from_the_last_day():
    days = days_ending(date(2026, 3, 2), 3)

    assert days == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]


def test_bar_chart_has_one_bar_per_day_and_series_scaled_to_a_round_maximum():
    days = days_ending(date(2026, 3, 30), 30)
    chart = daily_bar_chart(days, {"merges": {days[-1]: 7, days[0]: 3}, "unmerges": {days[-1]: 1}})

    assert len(chart.bars) == 60
    assert chart.maximum == 10
    tallest = max(chart.bars, key=lambda b: b.value)
    assert (tallest.day, tallest.series, tallest.value) == (days[-1], "merges", 7)
    full = chart.plot_bottom - chart.plot_top
    assert tallest.height == pytest.approx(full * 0.7, abs=0.01)
    assert tallest.y + tallest.height == pytest.approx(chart.plot_bottom)
    assert all(b.height == 0 for b in chart.bars if b.value == 0)
    # Bars of one day sit side by side, days left to right, inside the plot.
    first_day = [b for b in chart.bars if b.day == days[0]]
    assert first_day[0].x + first_day[0].width == pytest.approx(first_day[1].x)
    assert all(chart.plot_left <= b.x and b.x + b.width <= chart.plot_right + 0.01 for b in chart.bars)
    assert [t.value for t in chart.ticks] == [0, 2, 5, 7, 10]
    assert len(chart.labels) == 5  # every 7th day


def test_bar_chart_of_nothing_still_draws_an_axis():
    chart = daily_bar_chart(days_ending(date(2026, 1, 1), 30), {"merges": {}})

    assert chart.maximum == 1
    assert [t.value for t in chart.ticks] == [0, 1]
    assert all(b.height == 0 for b in chart.bars)


@pytest.mark.parametrize(
    ("weights", "tone"),
    [((3.2, 0.0), "agree"), ((-4.0,), "disagree"), ((2.0, -5.0), "disagree"), ((0.0,), "neutral")],
)
def test_a_row_takes_its_tone_from_the_weight_of_its_evidence(weights, tone):
    evidence = [EvidenceItem("family", "exact", w, "a", "b") for w in weights]

    assert Row("names", "Names", ["a"], ["b"], evidence).tone == tone


@pytest.mark.parametrize(
    ("left", "right", "tone"), [(["M"], ["M"], "same"), (["M"], ["S"], "differs"), ([], [], "neutral")]
)
def test_a_row_without_evidence_compares_plain_values(left, right, tone):
    assert Row("marital_status", "Marital status", left, right).tone == tone


def test_evidence_items_read_the_stored_explanation():
    stored = {
        "evidence": [{"field": "birth_date", "level": "year_off_by_one", "weight": 2.5, "value_a": "1980"}]
    }

    (item,) = evidence_items(stored)

    assert (item.label, item.level_label, item.tone, item.value_b) == (
        "birth date",
        "year off by one",
        "agree",
        "",
    )
    assert evidence_items({}) == []


def test_describe_changes_says_what_a_merge_moves_copies_and_changes():
    changes = {
        "identifiers_moved": [{"id": 1, "values": {"system": "urn:x", "value": "77"}}],
        "copied": [
            {"model": "name", "id": None, "values": {"family": "Smyth", "given": ["Jon"], "use": "old"}}
        ],
        "altered": [{"model": "address", "id": 3, "old": {"use": "home"}, "new": {"use": "old"}}],
        "scalars": {"birth_date": {"old": "1980-04-03", "new": "1980-03-04"}},
    }

    assert describe_changes(changes) == [
        "Identifier urn:x|77 moves to the surviving record.",
        "Name Jon Smyth is copied (use: old).",
        "Surviving address: use home → old.",
        "Birth date: 1980-04-03 → 1980-03-04.",
    ]


def _patients():
    left = Patient(version=3, gender="male", birth_date=date(1980, 3, 4), marital_status="")
    right = Patient(version=5, gender="male", birth_date=date(1980, 4, 3), marital_status="M")
    return left, right


def _post(**changes):
    data = {
        "survivor": "left",
        "left_version": "3",
        "right_version": "5",
        "reason": " same man ",
        "gender": "left",
        "birth_date": "left",
        "deceased": "left",
        "marital_status": "left",
        "multiple_birth": "left",
        "managing_organization": "left",
        "names": "both",
        "addresses": "left",
        "contacts": "right",
    }
    return {**data, **changes}


def test_merge_form_defaults_to_the_left_value_unless_only_the_right_has_one():
    left, right = _patients()
    form = MergeForm(left=left, right=right)

    assert form["birth_date"].initial == "left"
    assert form["marital_status"].initial == "right"
    assert form["names"].initial == "both"


def test_merge_form_with_the_right_record_surviving_takes_the_left_values_from_the_duplicate():
    left, right = _patients()
    form = MergeForm(_post(survivor="right", marital_status="right"), left=left, right=right)
    assert form.is_valid(), form.errors

    wanted = form.merge_request()

    assert (wanted.survivor, wanted.duplicate) == (right, left)
    # Gender is the same on both: no choice to record. The birth date comes from the left.
    assert wanted.take_from_duplicate == frozenset({"birth_date"})
    assert (wanted.names, wanted.addresses, wanted.contacts) == ("both", "duplicate", "survivor")
    assert (wanted.survivor_version, wanted.duplicate_version) == (5, 3)
    assert wanted.reason == "same man"


def test_merge_form_refuses_unknown_choices():
    left, right = _patients()

    form = MergeForm(_post(survivor="middle", names="all"), left=left, right=right)

    assert not form.is_valid()
    assert set(form.errors) == {"survivor", "names"}
