"""Random register / update / merge / unmerge / delete / restore from several threads at once.

Every thread runs its own seeded sequence of operations over one small shared pool of
look-alike patients, so the writes collide on the same patient rows, candidate rows,
identifiers and the audit chain. The domain errors the services promise (a version moved,
a merge refused, a patient in the wrong state, an identifier taken) are fine; anything
else (an IntegrityError leaking, a deadlock, any other exception) fails the test. At the
end the registry's invariants hold and the audit chain is intact.

``MPI_FAULT_OPS`` (operations over all threads) and ``MPI_FAULT_SEED`` make a longer or
repeated run: ``make faults``. The seed is printed on failure.
"""

from __future__ import annotations

import os
import random
import threading
import traceback
from dataclasses import replace
from datetime import date

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection

from matching.merging import merge_patients, unmerge_patients
from matching.models import Merge, MergeStatus
from patients.data import ContactData, IdentifierData, NameData
from patients.errors import PatientConflict
from patients.models import Patient
from patients.services import (
    delete_patient,
    patient_to_data,
    register_patient,
    restore_patient,
    update_patient,
)
from tests.factories import MRN_SYSTEM, patient_data
from tests.faults.checks import assert_audit_chain_intact, assert_no_integrity_violations

THREADS = 6
OPS = int(os.environ.get("MPI_FAULT_OPS", "120"))
SEED = int(os.environ.get("MPI_FAULT_SEED") or random.SystemRandom().randrange(1_000_000))
POOL = 8
# A few identifier values shared by every thread: registrations and updates fight over them.
MRNS = [f"F-{n}" for n in range(6)]
GIVEN = ["John", "Jon", "Johnny", "Jonathan", "Jack"]
OPERATIONS = ["register", "update", "update", "merge", "merge", "unmerge", "delete", "restore"]


def _data(rng: random.Random, *, mrn: str | None):
    """A look-alike: every pool member matches the others, so candidates are shared rows."""
    data = patient_data(
        given=(rng.choice(GIVEN),),
        birth_date=date(1980, 3, rng.randint(3, 5)),
        mrn=None,
        phone=f"+1 617 555 01{rng.randint(0, 9):02d}",
    )
    identifiers = (IdentifierData(system=MRN_SYSTEM, value=mrn, type="MR"),) if mrn else ()
    return replace(data, identifiers=identifiers)


class Run:
    """The shared state of one run: the patient pool and what went wrong."""

    def __init__(self, actor: User) -> None:
        self.actor = actor
        self.lock = threading.Lock()
        self.patients: list[int] = []
        self.unexpected: list[str] = []
        self.counts: dict[str, int] = {}

    def add(self, pk: int) -> None:
        with self.lock:
            self.patients.append(pk)

    def pick(self, rng: random.Random, k: int = 1) -> list[Patient]:
        with self.lock:
            pks = rng.sample(self.patients, k)
        return [Patient.all_objects.get(pk=pk) for pk in pks]

    def count(self, key: str) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1


def _register(run: Run, rng: random.Random) -> None:
    mrn = rng.choice([*MRNS, None, None])
    patient = register_patient(data=_data(rng, mrn=mrn), actor=run.actor, reason="fault test")
    run.add(patient.pk)


def _update(run: Run, rng: random.Random) -> None:
    (patient,) = run.pick(rng)
    data = patient_to_data(patient)  # read, then write with the version that was read
    change = rng.choice(["given", "phone", "mrn"])
    if change == "given":
        data = replace(data, names=(NameData(family="Smith", given=(rng.choice(GIVEN),), use="official"),))
    elif change == "phone":
        phone = f"+1 617 555 01{rng.randint(0, 9):02d}"
        data = replace(data, contacts=(ContactData(system="phone", value=phone, use="home"),))
    else:
        ident = IdentifierData(system=MRN_SYSTEM, value=rng.choice(MRNS), type="MR")
        data = replace(data, identifiers=(ident,))
    update_patient(
        patient=patient, data=data, expected_version=patient.version, actor=run.actor, reason="fault test"
    )


def _merge(run: Run, rng: random.Random) -> None:
    survivor, duplicate = run.pick(rng, 2)
    merge_patients(
        survivor=survivor,
        duplicate=duplicate,
        actor=run.actor,
        reason="fault test",
        survivor_version=survivor.version if rng.random() < 0.5 else None,
        duplicate_version=duplicate.version if rng.random() < 0.5 else None,
    )


def _unmerge(run: Run, rng: random.Random) -> None:
    standing = list(Merge.objects.filter(status=MergeStatus.MERGED).values_list("pk", flat=True))
    if not standing:
        raise _Skipped
    merge = Merge.objects.get(pk=rng.choice(standing))
    unmerge_patients(merge=merge, actor=run.actor, reason="fault test")


def _delete(run: Run, rng: random.Random) -> None:
    (patient,) = run.pick(rng)
    delete_patient(patient=patient, actor=run.actor, reason="fault test")


def _restore(run: Run, rng: random.Random) -> None:
    (patient,) = run.pick(rng)
    restore_patient(patient=patient, actor=run.actor, reason="fault test")


ACTIONS = {
    "register": _register,
    "update": _update,
    "merge": _merge,
    "unmerge": _unmerge,
    "delete": _delete,
    "restore": _restore,
}


class _Skipped(Exception):
    """Nothing to do (no standing merge to undo)."""


def _thread(run: Run, index: int, ops: int) -> None:
    rng = random.Random(SEED * 1000 + index)
    try:
        for step in range(ops):
            name = rng.choice(OPERATIONS)
            try:
                ACTIONS[name](run, rng)
                run.count(f"{name}:ok")
            except (PatientConflict, ValidationError) as exc:
                run.count(f"{name}:{type(exc).__name__}")
            except _Skipped:
                run.count(f"{name}:skipped")
            except Exception:
                with run.lock:
                    run.unexpected.append(f"thread {index} step {step} ({name}):\n{traceback.format_exc()}")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_random_concurrent_operations_keep_every_invariant(django_user_model):
    actor = django_user_model.objects.create_user("fault-steward")
    run = Run(actor)
    seed_rng = random.Random(SEED)
    for n in range(POOL):
        data = _data(seed_rng, mrn=f"POOL-{n}" if n % 2 else None)
        run.add(register_patient(data=data, actor=actor, reason="pool").pk)
    per_thread = max(1, OPS // THREADS)
    threads = [threading.Thread(target=_thread, args=(run, i, per_thread)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(600, OPS))
    outcomes = sorted(run.counts.items())
    context = f"seed {SEED} (MPI_FAULT_SEED={SEED} reproduces the sequences); outcomes {outcomes}"
    print(context)
    assert not any(t.is_alive() for t in threads), context
    assert not run.unexpected, context + "\n" + "\n".join(run.unexpected)
    # The run did real work: writes of every kind succeeded, not only refusals.
    done = {key.split(":")[0] for key, n in run.counts.items() if key.endswith(":ok")}
    assert {"register", "update", "merge"} <= done, context
    assert_no_integrity_violations()
    assert_audit_chain_intact()
