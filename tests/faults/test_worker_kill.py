"""SIGKILL in the middle of writes: a gunicorn worker serving merges, and the bulk importer.

A process killed mid-transaction never sends COMMIT, so PostgreSQL rolls its work back:
a write is all there or not there at all. What these tests prove is that nothing of ours
breaks that: no acknowledged (2xx) write is lost, nothing half-done is left behind
(``check_integrity`` finds no violation), the audit chain verifies, no request gets a
5xx, and a killed import resumed with ``--resume`` loads every record exactly once.

Bounded for the suite (a few kills, well under a minute); ``make faults`` runs longer
with ``MPI_FAULT_KILLS``. The seed (``MPI_FAULT_SEED``) is printed on failure.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.db.models import Count

from accounts.services import issue_token
from bench.server import children
from matching.models import Merge, MergeStatus
from matching.services import matching_disabled
from patients.data import IdentifierData
from patients.models import Identifier, Patient
from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.faults.checks import ROOT, assert_audit_chain_intact, assert_no_integrity_violations
from tests.mpi.test_serving import child_env, gunicorn_server

KILLS = int(os.environ.get("MPI_FAULT_KILLS", "5"))
SEED = int(os.environ.get("MPI_FAULT_SEED") or random.SystemRandom().randrange(1_000_000))
CLIENTS = 4
IMPORT_ROWS = int(os.environ.get("MPI_FAULT_IMPORT_ROWS", "300"))
IMPORT_KILLS = max(2, KILLS // 2)


# --- Processes -------------------------------------------------------------------------------


def wait_for_workers(master: int, count: int, deadline: float) -> list[int]:
    while len(workers := children(master)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"gunicorn has {len(workers)} workers, not {count}")
        time.sleep(0.05)
    return workers


# --- HTTP clients ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every answer the clients got: what was acknowledged, what was cut off."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    registered: dict[str, str] = field(default_factory=dict)  # patient uuid -> MRN
    merges: dict[str, tuple[str, str]] = field(default_factory=dict)  # merge uuid -> (survivor, duplicate)
    unmerged: set[str] = field(default_factory=set)  # merge uuids whose unmerge was acknowledged
    unmerge_tried: set[str] = field(default_factory=set)
    statuses: dict[str, int] = field(default_factory=dict)  # "merge 201" -> count
    server_errors: list[str] = field(default_factory=list)

    def answers(self) -> int:
        with self.lock:
            return sum(self.statuses.values())

    def wait_for_answers(self, count: int, deadline: float) -> None:
        """Until ``count`` more requests have been answered (or cut off)."""
        target = self.answers() + count
        while self.answers() < target:
            assert time.monotonic() < deadline, f"no progress: {self.statuses}"
            time.sleep(0.02)

    def note(self, what: str, status: int | str, body: str = "") -> None:
        with self.lock:
            key = f"{what} {status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            if isinstance(status, int) and status >= 500:
                self.server_errors.append(f"{key}: {body[:500]}")


class Client:
    def __init__(self, base: str, token: str, ledger: Ledger) -> None:
        self.base, self.token, self.ledger = base, token, ledger

    def call(self, what: str, method: str, path: str, body: dict) -> dict | None:
        """The JSON answer of a 2xx; None for a refusal or a connection the kill cut off."""
        request = Request(
            self.base + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urlopen(request, timeout=60) as response:
                self.ledger.note(what, response.status)
                return json.loads(response.read())
        except HTTPError as exc:
            self.ledger.note(what, exc.code, exc.read().decode(errors="replace"))
        except (OSError, HTTPException) as exc:  # reset, refused, closed without an answer
            self.ledger.note(what, f"cut off ({type(exc).__name__})")
        return None


def _client_loop(client: Client, rng: random.Random, pairs: list, mrns, stop: threading.Event) -> None:
    ledger = client.ledger
    while not stop.is_set():
        with ledger.lock:
            pair = pairs.pop() if pairs and rng.random() < 0.7 else None
        if pair is None:
            mrn = next(mrns)
            data = {
                "names": [{"use": "official", "family": "Killian", "given": [f"Reg{mrn}"]}],
                "identifiers": [{"system": MRN_SYSTEM, "value": mrn, "type": "MR"}],
                "gender": "female",
                "birth_date": "1975-06-01",
            }
            answer = client.call("register", "POST", "/api/v1/patients/", data)
            if answer is not None:
                with ledger.lock:
                    ledger.registered[answer["id"]] = mrn
            continue
        survivor, duplicate = pair
        body = {"survivor": survivor, "duplicate": duplicate, "reason": "fault test"}
        merge = client.call("merge", "POST", "/api/v1/merges/", body)
        if merge is None:
            continue
        with ledger.lock:
            ledger.merges[merge["id"]] = (survivor, duplicate)
        if rng.random() < 0.5:
            with ledger.lock:
                ledger.unmerge_tried.add(merge["id"])
            path = f"/api/v1/merges/{merge['id']}/unmerge/"
            if client.call("unmerge", "POST", path, {"reason": "fault test"}) is not None:
                with ledger.lock:
                    ledger.unmerged.add(merge["id"])


# --- The gunicorn test -------------------------------------------------------------------------


def _patient_pairs(count: int) -> list[tuple[str, str]]:
    """Look-alike pairs to merge, registered without matching (fast)."""
    pairs = []
    with matching_disabled():
        for n in range(count):
            uuids = []
            for side in "ab":
                data = patient_data(family="Killmer", given=(f"Pair{n}",), mrn=None, phone=None)
                ident = IdentifierData(system=MRN_SYSTEM, value=f"PAIR-{n}-{side}", type="MR")
                uuids.append(str(register_patient(data=replace(data, identifiers=(ident,))).uuid))
            pairs.append(tuple(uuids))
    return pairs


@pytest.mark.django_db(transaction=True)
def test_killing_gunicorn_workers_mid_write_loses_no_acknowledged_write(steward, tmp_path):
    rng = random.Random(SEED)
    _, token = issue_token(user=steward, name="fault test")
    pairs = _patient_pairs(10 + 4 * KILLS)
    log = tmp_path / "gunicorn.log"
    ledger = Ledger()
    stop = threading.Event()
    kills = []
    env = {"GUNICORN_WORKERS": "2", "GUNICORN_TIMEOUT": "10", "MPI_PROCESS": "web"}
    with gunicorn_server(tmp_path, log, **env) as (server, base):
        wait_for_workers(server.pid, 2, time.monotonic() + 60)
        mrns = (f"KILL-{SEED}-{n}" for n in itertools.count())
        threads = [
            threading.Thread(
                target=_client_loop,
                args=(Client(base, token, ledger), random.Random(SEED + i), pairs, mrns, stop),
            )
            for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30 + 10 * KILLS
        try:
            for _ in range(KILLS):
                # Kill while the clients are getting answers, not while both workers
                # are still booting after the previous kill.
                ledger.wait_for_answers(2, deadline)
                time.sleep(rng.uniform(0, 0.4))
                workers = wait_for_workers(server.pid, 2, deadline)
                victim = rng.choice(workers)
                os.kill(victim, signal.SIGKILL)
                kills.append(victim)
            # The replacements serve: the registry still takes writes after the last kill.
            ledger.wait_for_answers(2, deadline)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)

    answers = sorted(ledger.statuses.items())
    context = f"seed {SEED} (MPI_FAULT_SEED reproduces the choices); answers {answers}"
    print(context)
    assert len(kills) == KILLS, context
    # The server's log says why a request failed (the traceback of a 5xx).
    assert not ledger.server_errors, "\n".join([context, *ledger.server_errors, log.read_text()[-20000:]])
    assert ledger.registered and ledger.merges, context  # real work was acknowledged
    # Every acknowledged registration is there, with its identifier.
    found = dict(
        Identifier.all_objects.filter(patient__uuid__in=ledger.registered, system=MRN_SYSTEM).values_list(
            "patient__uuid", "value"
        )
    )
    assert {str(k): v for k, v in found.items()} == ledger.registered, context
    # Every acknowledged merge is there; undone exactly when its unmerge was acknowledged,
    # standing when no unmerge was sent (a cut-off unmerge may have landed or not).
    stored = {str(m.uuid): m for m in Merge.objects.filter(uuid__in=ledger.merges).select_related()}
    assert set(stored) == set(ledger.merges), context
    for merge_id, (survivor, duplicate) in ledger.merges.items():
        merge = stored[merge_id]
        assert (str(merge.survivor.uuid), str(merge.duplicate.uuid)) == (survivor, duplicate)
        if merge_id in ledger.unmerged:
            assert merge.status == MergeStatus.UNMERGED, merge_id
        elif merge_id not in ledger.unmerge_tried:
            assert merge.status == MergeStatus.MERGED, merge_id
    assert_no_integrity_violations()
    assert_audit_chain_intact()
    # The master saw each worker die and replaced it (and no worker timed out on a lock).
    text = log.read_text()
    assert text.count("was sent SIGKILL") + text.count("killed by signal 9") >= KILLS, text[-3000:]
    assert "WORKER TIMEOUT" not in text


# --- The importer ------------------------------------------------------------------------------


def _write_csv(path: Path, rows: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    mrns = [f"IMP-{seed}-{n}" for n in range(rows)]
    families = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Silva", "Brennan", "Haddad"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["identifier_system", "identifier_value", "family", "given", "birth_date", "gender"])
        for n, mrn in enumerate(mrns):
            born = f"19{rng.randint(30, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            writer.writerow([MRN_SYSTEM, mrn, rng.choice(families), f"Given{n}", born, rng.choice("mf")])
    return mrns


def _import(path: Path, checkpoint: Path, *, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "manage.py", "import_patients", str(path), "--batch-size", "20"]
    args += ["--checkpoint", str(checkpoint), "--rejects", str(path.with_suffix(".rejects.csv"))]
    return subprocess.Popen(
        args + (["--resume"] if resume else []),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_import_resumed_loads_every_record_exactly_once(tmp_path):
    rng = random.Random(SEED)
    source = tmp_path / "patients.csv"
    mrns = _write_csv(source, IMPORT_ROWS, SEED)
    checkpoint = tmp_path / "checkpoint.json"
    kills, runs = 0, []
    deadline = time.monotonic() + 60 + 20 * IMPORT_KILLS
    while True:
        process = _import(source, checkpoint, resume=checkpoint.exists())
        if kills < IMPORT_KILLS:
            # Killed once it has committed a batch (so there is a checkpoint to resume
            # from), at a random moment after: usually in the middle of a batch.
            mtime = checkpoint.stat().st_mtime if checkpoint.exists() else 0
            while process.poll() is None and (not checkpoint.exists() or checkpoint.stat().st_mtime == mtime):
                assert time.monotonic() < deadline, "the import made no progress"
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
        output, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
        runs.append((process.returncode, output[-2000:]))
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, runs
    context = f"seed {SEED}; {kills} kills; runs {runs}"
    print(context)
    assert kills >= 1, context
    per_mrn = dict(
        Identifier.all_objects.filter(system=MRN_SYSTEM, value__in=mrns)
        .values("value")
        .annotate(n=Count("id"))
        .values_list("value", "n")
    )
    assert len(per_mrn) == len(mrns), context  # none lost
    assert set(per_mrn.values()) == {1}, context  # none twice
    assert Patient.objects.count() == len(mrns), context
    assert (
        not source.with_suffix(".rejects.csv").exists()
        or len(source.with_suffix(".rejects.csv").read_text().splitlines()) <= 1
    ), context
    assert_no_integrity_violations()
    assert_audit_chain_intact()
