"""train_matcher: u from random pairs, m by EM on blocked pairs, saved as a new version."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from matching import levels as L
from matching import training
from matching.comparators import FieldComparison
from matching.defaults import DEFAULT_PARAMS
from matching.em import estimate_m_em
from matching.models import MatchCandidate, MatchModelVersion
from matching.services import active_matcher, forget_cached_matcher, matching_disabled
from patients.demo import generate_demo
from patients.services import register_patient
from tests.factories import patient_data

pytestmark = pytest.mark.django_db
SMALL = {"u_pairs": 20_000, "u_records": 200, "em_pairs": 2_000, "seed": 3}


@pytest.fixture
def registry(monkeypatch):
    """200 demo records (with planted duplicates); the size floor lowered to fit them."""
    monkeypatch.setattr(training, "MIN_PATIENTS", 150)
    with matching_disabled():
        for record in generate_demo(200, seed=5):
            register_patient(data=record.data)
    forget_cached_matcher()
    active_matcher()  # a flushed test database gets the shipped defaults back as v1


def _train(*args, **options) -> str:
    out = StringIO()
    call_command("train_matcher", *args, stdout=out, **{**SMALL, **options})
    return out.getvalue()


def test_training_refuses_a_database_too_small():
    with matching_disabled():
        register_patient(data=patient_data())
    versions = MatchModelVersion.objects.count()
    with pytest.raises(CommandError, match=r"Only 1 live patients: training needs at least 500"):
        _train()
    assert MatchModelVersion.objects.count() == versions


def test_training_saves_an_inactive_version_with_sane_weights(registry):
    active_before = MatchModelVersion.objects.get(active=True)

    output = _train()

    trained = MatchModelVersion.objects.order_by("-version").first()
    assert trained.version == active_before.version + 1
    assert not trained.active and MatchModelVersion.objects.get(active=True) == active_before
    assert "NOT active" in output and "weight" in output  # the per-level table was printed
    levels = trained.params["levels"]
    for field in ("family", "given", "birth_date", "postcode", "phone"):
        exact, disagree = levels[field]["exact"], levels[field]["disagree"]
        assert exact["m"] > disagree["m"], field
        assert exact["u"] < disagree["u"], field
        assert exact["m"] / exact["u"] > 1 > disagree["m"] / disagree["u"], field
    assert trained.params["version"] == f"trained-v{trained.version}"
    assert [s["block"] for s in trained.training["sessions"]] == ["name_pair", "date_initial"]
    assert trained.training["seed"] == 3 and trained.training["patients"] == 200
    assert "Trained from v1" in trained.notes


def test_training_is_reproducible_with_a_seed(registry):
    options = training.TrainingOptions(seed=9, u_pairs=5_000, u_records=150, em_pairs=1_000)
    first = training.train(options=options)
    second = training.train(options=options)
    assert first.params.to_dict() == second.params.to_dict()


def test_dry_run_saves_nothing(registry):
    output = _train("--dry-run")
    assert "Dry run: nothing saved." in output
    assert MatchModelVersion.objects.count() == 1


def test_activate_switches_the_active_version_used_by_matching(registry):
    previous = MatchModelVersion.objects.get(active=True)

    output = _train("--activate")

    trained = MatchModelVersion.objects.get(active=True)
    previous.refresh_from_db()
    assert trained.version == previous.version + 1 and not previous.active
    assert "activated" in output
    assert active_matcher()[0] == trained
    # A registration matches with the new version from now on.
    first = register_patient(data=patient_data(family="Quarshie", given=("Kofi",), mrn="q1"))
    register_patient(data=patient_data(family="Quarshie", given=("Kofi",), mrn="q2"))
    candidate = MatchCandidate.objects.get(patient_a=first)
    assert candidate.model_version == trained


def _levels(born: str, email: str, home: str) -> tuple[FieldComparison, ...]:
    return (
        FieldComparison(L.FAMILY, L.EXACT),
        FieldComparison(L.GIVEN, L.EXACT),
        FieldComparison(L.BIRTH_DATE, born),
        FieldComparison(L.ADDRESS, home),
        FieldComparison(L.POSTCODE, home),
        FieldComparison(L.EMAIL, email),
    )


def test_name_pair_session_does_not_train_email_which_follows_the_name():
    # Namesakes far apart: john.smith@ and john.smith80@ are "close" because the names
    # agree, which the name-pair block requires. Counted as evidence, EM takes them
    # for one person with two birth dates.
    session = next(s for s in training.SESSIONS if s.block == "name_pair")
    pairs = (
        [_levels(L.EXACT, L.EXACT, L.EXACT)] * 200  # the same person
        + [_levels(L.DISAGREE, L.LOCAL_CLOSE, L.DISAGREE)] * 400  # namesakes
        + [_levels(L.DISAGREE, L.DISAGREE, L.DISAGREE)] * 400
    )
    with_email = tuple(f for f in session.exclude if f != L.EMAIL)
    fooled = estimate_m_em(pairs, DEFAULT_PARAMS, exclude=with_email).params
    trained = estimate_m_em(pairs, DEFAULT_PARAMS, exclude=session.exclude).params
    assert L.EMAIL in session.exclude
    assert fooled.levels[L.BIRTH_DATE][L.EXACT].m < 0.5
    assert trained.levels[L.BIRTH_DATE][L.EXACT].m > 0.9
