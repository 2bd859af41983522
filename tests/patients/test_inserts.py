"""One statement writes the rows and history rows that save() and bulk_create_with_history write."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from simple_history.utils import bulk_create_with_history

from matching.models import MatchCandidate
from matching.services import active_matcher
from patients.inserts import InsertWithHistory, create_with_history
from patients.models import Address, Contact, Identifier, Name, Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db

# Keys, generated values and timestamps differ between any two writes.
IGNORED = {"id", "uuid", "patient_id", "history_id", "history_date", "created_at", "updated_at", "value"}


def values(row) -> dict:
    return {k: v for k, v in row.__dict__.items() if k not in IGNORED and not k.startswith("_")}


def children(mrn: str) -> list[tuple[type, dict]]:
    return [
        (Name, {"family": "Smith", "given": ["John", "Paul"], "use": "official", "primary": True}),
        (Name, {"family": "Smyth", "given": ["Jon"], "use": "nickname", "primary": False}),
        (Address, {"line": ["1 Main St"], "city": "Boston", "postal_code": "02101", "primary": True}),
        (Contact, {"system": "phone", "value": "+16175550100", "normalized_value": "+16175550100"}),
        (Identifier, {"system": MRN_SYSTEM, "value": mrn, "type": "MR"}),
    ]


def written(patient: Patient) -> dict:
    rows = {"patient": values(Patient.objects.get(pk=patient.pk))}
    rows["patient history"] = [values(h) for h in patient.history.all()]
    for model in (Name, Address, Contact, Identifier):
        mine = model.objects.filter(patient=patient).order_by("pk")
        rows[model.__name__] = [values(r) for r in mine]
        rows[f"{model.__name__} history"] = [
            values(h) for h in model.history.filter(patient=patient).order_by("history_id")
        ]
    return rows


def test_a_patient_and_its_children_read_back_as_save_and_bulk_create_with_history_wrote_them(clerk):
    by_django = Patient(gender="male")
    by_django._history_user, by_django._change_reason = clerk, "Registered"
    by_django.save()
    for model, fields in children("1"):
        bulk_create_with_history(
            [model(patient=by_django, **fields)],
            model,
            default_user=clerk,
            default_change_reason="Registered",
        )

    mine = Patient(gender="male")
    statement = InsertWithHistory(user=clerk, reason="Registered")
    statement.add([mine])
    rows = [model(**fields) for model, fields in children("2")]
    for model in (Name, Address, Contact, Identifier):
        statement.add([r for r in rows if type(r) is model], parent=mine)
    with CaptureQueriesContext(connection) as queries:
        statement.execute()

    assert len(queries) == 1
    assert written(mine) == written(by_django)
    # Keys and foreign keys are set on the objects as save() sets them.
    assert not mine._state.adding and Patient.objects.filter(pk=mine.pk, uuid=mine.uuid).exists()
    for row in rows:
        assert row.patient_id == mine.pk and not row._state.adding
        assert type(row).objects.filter(pk=row.pk, patient=mine).exists()
    names = Name.objects.filter(patient=mine).order_by("pk")
    assert [n.pk for n in names] == [r.pk for r in rows if type(r) is Name]
    assert [n.family for n in names] == ["Smith", "Smyth"]  # keys in the order given
    (history,) = mine.history.all()
    assert (history.history_user, history.history_change_reason, history.history_type) == (
        clerk,
        "Registered",
        "+",
    )


def test_fields_left_out_of_history_stay_out(steward):
    version, _ = active_matcher()
    a, b, c = (Patient.objects.create() for _ in range(3))
    pair = {"probability": 0.9, "weight": 5.0, "grade": "probable", "evidence": {}, "model_version": version}
    theirs = MatchCandidate(patient_a=a, patient_b=b, **pair)
    bulk_create_with_history([theirs], MatchCandidate, default_user=steward, default_change_reason="Opened")
    (mine,) = create_with_history(
        [MatchCandidate(patient_a=a, patient_b=c, **pair)], user=steward, reason="Opened"
    )

    def history(candidate) -> dict:
        row = values(candidate.history.get())
        return {k: v for k, v in row.items() if k not in ("patient_b_id",)}

    assert history(mine) == history(theirs)
    assert "claimed_until" not in history(mine)  # excluded from MatchCandidate's history


def test_a_unique_violation_in_any_table_writes_nothing():
    register_patient(data=patient_data(mrn="77"))
    patient = Patient()
    statement = InsertWithHistory(reason="x")
    statement.add([patient])
    statement.add([Name(family="Smith", given=["Ann"], primary=True)], parent=patient)
    statement.add([Identifier(system=MRN_SYSTEM, value="77")], parent=patient)
    before = {m: m.history.model.objects.count() for m in (Patient, Name, Identifier)}

    with pytest.raises(IntegrityError, match="uniq_live_identifier"), transaction.atomic():
        statement.execute()

    assert {m: m.history.model.objects.count() for m in before} == before
    assert Patient.all_objects.count() == 1 and Name.objects.count() == 1


def test_without_history_only_the_rows_are_written(settings):
    settings.SIMPLE_HISTORY_ENABLED = False
    (patient,) = create_with_history([Patient(gender="female")], reason="x")
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert not patient.history.exists()


def test_nothing_added_sends_nothing():
    statement = InsertWithHistory()
    statement.add([])
    with CaptureQueriesContext(connection) as queries:
        statement.execute()
    assert len(queries) == 0
