"""The synthetic registry (a CSV file for ``import_patients``) and the benchmark's probes.

The people come from the search benchmark's generator (census-like names, households,
about 5% planted duplicates registered "at another facility"), written in the
importer's CSV columns. Probes are built after the import, from what is in the
database: reads and updates of random patients, clerk searches as a clerk types them,
FHIR searches, and new registrations and ``$match`` probes that are half fresh people,
half fresh slips of registered ones (so matching has real work to do).
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlencode

from django.db import connection

from fhir_api.mapping import data_to_fhir
from patients.data import PatientData
from patients.importing.benchdata import COLUMNS, csv_row
from patients.queries import load_patient_data
from search.bench.corrupt import Corruptor
from search.bench.generator import PeopleGenerator
from search.bench.measure import clerk_query
from search.normalize import fold

CHUNK = 5000  # the generator's chunk size: positions of chunk k are k*CHUNK ...
FHIR_JSON = "application/fhir+json"


def write_registry_csv(path: Path, count: int, seed: int) -> int:
    """``count`` generated people as an import CSV; returns how many are planted duplicates."""
    planted = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for person in PeopleGenerator(seed).people(count, CHUNK):
            writer.writerow(csv_row(ascii_emails(person.data)))
            planted += person.duplicate_of is not None
    return planted


def ascii_emails(data: PatientData) -> PatientData:
    """The generator builds email addresses from accented names ("lori.pérez-reverte@..."),
    which the registry rightly refuses (the search benchmark's COPY loader never checked)."""
    if all(c.system != "email" or c.value.isascii() for c in data.contacts):
        return data
    return replace(
        data,
        contacts=tuple(
            replace(c, value=fold(c.value), normalized_value=fold(c.value)) if c.system == "email" else c
            for c in data.contacts
        ),
    )


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent over the wire (``client``) or through Django's test client (``floors``)."""

    method: str
    path: str
    body: bytes | None = None
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    expect: int = 200
    # For a $match probe: the patient it should find (the original of a planted slip).
    finds: str | None = None


# --- Request bodies ----------------------------------------------------------------


def _drop_empty(item: dict) -> dict:
    return {k: v for k, v in item.items() if v not in ("", None, [], ())}


def rest_body(data: PatientData) -> dict:
    """The REST registration/update shape (docs/rest-api.md) of a data tree."""
    return _drop_empty(
        {
            "names": [
                _drop_empty({"use": n.use, "family": n.family, "given": list(n.given)}) for n in data.names
            ],
            "identifiers": [
                _drop_empty({"system": i.system, "value": i.value, "type": i.type}) for i in data.identifiers
            ],
            "addresses": [
                _drop_empty(
                    {
                        "use": a.use,
                        "line": list(a.line),
                        "city": a.city,
                        "state": a.state,
                        "postal_code": a.postal_code,
                        "country": a.country,
                    }
                )
                for a in data.addresses
            ],
            "contacts": [
                _drop_empty({"system": c.system, "value": c.value, "use": c.use}) for c in data.contacts
            ],
            "gender": data.gender,
            "birth_date": data.birth_date.isoformat() if data.birth_date else "",
        }
    )


def fhir_patient(data: PatientData) -> dict:
    resource = data_to_fhir(data, id="x", version=1, last_updated=None)
    resource.pop("id")
    resource.pop("meta")
    return resource


def _json(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


# --- Probes ---------------------------------------------------------------------------


class Probes:
    """Builds the requests of every phase from a loaded benchmark database."""

    def __init__(self, *, count: int, seed: int, patients: int, fresh: bool = False) -> None:
        self.count = count
        self.rng = random.Random(seed * 7919)
        self.generator = PeopleGenerator(seed + 1000)
        self.corruptor = Corruptor(self.generator)
        self.patients = patients
        # Fresh identifiers: the import used positions below ``patients``. ``fresh``: an
        # earlier run registered people in this database already, so this one takes a
        # random slot of its own (a run uses a few thousand positions and a few chunks);
        # its new people's chunks lie above every slip's position.
        self._positions = iter(range(10 * max(patients, CHUNK), 10**8))
        self._fresh_chunk = -(-patients // CHUNK) + 1000
        if fresh:
            slot = random.SystemRandom().randrange(1, 4000)
            self._positions = iter(range(10 * max(patients, CHUNK) + slot * 20_000, 10**8))
            self._fresh_chunk = 10**8 // CHUNK + slot * 10

    # -- database samples --------------------------------------------------------------
    def sample(self, count: int) -> list[tuple[int, str, int]]:
        """(id, uuid, version) of ``count`` random live patients (fewer if the registry is small)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT min(id), max(id) FROM patients_patient")
            low, high = cursor.fetchone()
            wanted = {self.rng.randint(low, high) for _ in range(count * 2)}
            cursor.execute(
                "SELECT id, uuid::text, version FROM patients_patient "
                "WHERE id = ANY(%s) AND deleted_at IS NULL AND active ORDER BY id",
                [sorted(wanted)],
            )
            rows = cursor.fetchall()
        self.rng.shuffle(rows)
        return rows[:count]

    def _fresh_people(self, count: int) -> Iterator[PatientData]:
        """New people (their own MRNs), half of them slips of registered patients."""
        originals = self.sample(count)
        data = load_patient_data([pid for pid, _, _ in originals])
        fresh = self._fresh_generated()
        for pid, _, _ in originals:
            if self.rng.random() < 0.5 and data.get(pid) and data[pid].names:
                yield self.slip(data[pid])
            else:
                yield next(fresh)

    def _fresh_generated(self) -> Iterator[PatientData]:
        while True:
            self._fresh_chunk += 1
            for person in self.generator.chunk(self._fresh_chunk, CHUNK, 10**9):
                if person.duplicate_of is None:
                    yield ascii_emails(person.data)

    def slip(self, original: PatientData) -> PatientData:
        """The same person registered elsewhere: a new MRN and one to three clerk's slips."""
        data, _ = self.corruptor.duplicate(original, next(self._positions))
        return data

    # -- requests ------------------------------------------------------------------------
    def healthz(self) -> list[Request]:
        return [Request("GET", "/healthz")] * self.count

    def rest_reads(self) -> list[Request]:
        return [Request("GET", f"/api/v1/patients/{uuid}/") for _, uuid, _ in self.sample(self.count)]

    def fhir_reads(self) -> list[Request]:
        return [Request("GET", f"/fhir/Patient/{uuid}") for _, uuid, _ in self.sample(self.count)]

    def missing_reads(self) -> list[Request]:
        """Authenticated DRF requests that do one indexed lookup and find nothing (404)."""
        uuids = (f"00000000-0000-4000-8000-{self.rng.getrandbits(48):012x}" for _ in range(self.count))
        return [Request("GET", f"/api/v1/patients/{u}/", expect=404) for u in uuids]

    def rest_updates(self) -> list[Request]:
        """PUT of the patient as stored, moved to another street (one real change each)."""
        rows = self.sample(self.count)
        data = load_patient_data([pid for pid, _, _ in rows])
        requests = []
        for pid, uuid, version in rows:
            if pid not in data:
                continue
            moved = self.generator.address() if not data[pid].addresses else data[pid].addresses[0]
            moved = replace(moved, line=(f"{self.rng.randint(1, 9999)} Benchmark Ave",))
            body = rest_body(replace(data[pid], addresses=(moved,)))
            requests.append(
                Request(
                    "PUT",
                    f"/api/v1/patients/{uuid}/",
                    _json(body),
                    "application/json",
                    {"If-Match": f'W/"{version}"'},
                )
            )
        return requests

    def rest_registrations(self) -> list[Request]:
        return [
            Request("POST", "/api/v1/patients/", _json(rest_body(d)), "application/json", expect=201)
            for d in self._fresh_people(self.count)
        ]

    def fhir_registrations(self) -> list[Request]:
        return [
            Request("POST", "/fhir/Patient", _json(fhir_patient(d)), FHIR_JSON, expect=201)
            for d in self._fresh_people(self.count)
        ]

    def clerk_searches(self) -> list[Request]:
        requests = []
        for pid, _, _ in self.sample(self.count):
            if query := clerk_query(pid, self.rng):
                requests.append(
                    Request("GET", "/api/v1/search/?" + urlencode({"q": query[1], "page_size": 10}))
                )
        return requests

    def fhir_searches(self) -> list[Request]:
        """PDQm-style queries: family + given + birth date, family + birth date, an identifier."""
        rows = self.sample(self.count)
        data = load_patient_data([pid for pid, _, _ in rows])
        requests = []
        for i, (pid, _, _) in enumerate(rows):
            person = data.get(pid)
            if person is None or not person.names:
                continue
            name, born = person.names[0], person.birth_date
            form = i % 3 if born else 2
            if form == 0 and name.given:
                params = {"family": name.family, "given": name.given[0], "birthdate": born.isoformat()}
            elif form in (0, 1):
                params = {"family": name.family, "birthdate": born.isoformat()}
            else:
                ident = person.identifiers[0]
                params = {"identifier": f"{ident.system}|{ident.value}"}
            requests.append(Request("GET", "/fhir/Patient?" + urlencode({**params, "_count": 10})))
        return requests

    def matches(self) -> list[Request]:
        """$match with a fresh slip of a registered patient (not itself registered)."""
        rows = self.sample(self.count)
        data = load_patient_data([pid for pid, _, _ in rows])
        requests = []
        for pid, uuid, _ in rows:
            if pid not in data or not data[pid].names:
                continue
            probe = self.slip(data[pid])
            body = {
                "resourceType": "Parameters",
                "parameter": [{"name": "resource", "resource": fhir_patient(probe)}],
            }
            requests.append(Request("POST", "/fhir/Patient/$match", _json(body), FHIR_JSON, finds=uuid))
        return requests
