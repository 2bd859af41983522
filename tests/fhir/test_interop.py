"""Interoperability: two third-party FHIR clients drive a live server (issue 7).

Our other FHIR tests call the views through Django's test client. These use the clients
integrators actually run, over real HTTP against pytest-django's ``live_server``:
``fhirpy`` and SMART on FHIR's ``fhirclient``, whose strict R4 models parse every
response (an unknown or mistyped element raises). Each client creates, reads, updates
with a version, searches with paging, runs ``$match`` and deletes. Where a client
departs from the spec, the test works around it and says so in a comment
(docs/fhir.md, "Interoperability").
"""

from __future__ import annotations

import gc
import threading
from datetime import date

import pytest
import requests
from fhirclient.client import FHIRClient
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.humanname import HumanName
from fhirclient.models.patient import Patient as SmartPatient
from fhirclient.server import FHIRNotFoundException, FHIRPermissionDeniedException
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, MultipleResourcesFound, ResourceNotFound
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome

from accounts.services import issue_token
from patients.bulk import write_batch
from tests.factories import MRN_SYSTEM, patient_data
from tests.fhir.conftest import patient_resource

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # WhiteNoise in the live server: tests do not run collectstatic.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

FAMILY = "Paget"
PAGED = 25  # patients of FAMILY, born 1960-01-01, 1961-01-01, ...
PAGE = 10  # the page size the clients ask for: three pages, the last one short
UNKNOWN_ID = "5f7c9f8e-0000-4000-8000-000000000000"
# Someone else for $match to rank below the probe's Smith.
JONES = {"family": "Jones", "given": ("Mary",), "gender": "female", "birth_date": "1975-01-02", "phone": None}


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """By a test's end every connection it opened is closed, so no server thread lingers.

    The live server serves each connection in a thread that lives as long as the client
    keeps the connection alive. A client exception caught by ``pytest.raises`` keeps its
    response (and the socket) alive in a traceback reference cycle: collect those first.
    """
    before = set(threading.enumerate())
    yield
    gc.collect()
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
    leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def _bearer(user) -> str:
    _, plain = issue_token(user=user, name=f"{user.username} interop token")
    return f"Bearer {plain}"


@pytest.fixture
def bearer(integrator) -> str:
    return _bearer(integrator)


@pytest.fixture
def steward_bearer(steward) -> str:
    """Deleting is a clerk's or steward's call, not an integrator's (patients/roles.py)."""
    return _bearer(steward)


@pytest.fixture
def base_url(live_server) -> str:
    return f"{live_server.url}/fhir"


@pytest.fixture
def paged_family(clerk) -> str:
    """PAGED patients of FAMILY, and one patient of another family.

    Seeded with the importer's bulk write, committed (the test is transactional, so the
    live server sees them): a fraction of the time 26 creates over HTTP take. The
    clients' own create is tested on its own.
    """
    records = [
        (
            number,
            patient_data(
                family=FAMILY,
                given=(f"Given{number:02d}",),
                birth_date=date(1960 + number, 1, 1),
                mrn=f"P{number}",
                phone=None,
            ),
        )
        for number in range(PAGED)
    ]
    records.append((PAGED, patient_data(family="Other", mrn="X1")))
    result = write_batch(records, actor=clerk, reason="seed", match=False)
    assert result.counts["created"] == PAGED + 1, result.rejects
    return FAMILY


def match_parameters(resource: dict) -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "resource", "resource": resource}, {"name": "count", "valueInteger": 5}],
    }


# --- fhirpy ---------------------------------------------------------------------------------


@pytest.fixture
def fhirpy(base_url, bearer) -> SyncFHIRClient:
    # fhirpy opens and closes a connection per request (requests.request): nothing to close.
    return SyncFHIRClient(url=base_url, authorization=bearer)


def test_fhirpy_creates_reads_updates_with_version_and_deletes(fhirpy, base_url, bearer, steward_bearer):
    patient = fhirpy.resource("Patient", **patient_resource(mrn="9001"))
    patient.save()
    assert patient.id
    assert patient["meta"]["versionId"] == "1"

    read = fhirpy.reference("Patient", patient.id).to_resource()
    assert read["name"][0]["family"] == "Smith"
    assert read["identifier"][0]["value"] == "9001"
    assert read.refresh()["meta"]["versionId"] == "1"

    # fhirpy's save() sends no If-Match; its extra_headers carry the version we read.
    # (Its client.update(resource) raises TypeError on its own resource objects: use save().)
    versioned = SyncFHIRClient(url=base_url, authorization=bearer, extra_headers={"If-Match": 'W/"1"'})
    read["birthDate"] = "1981-04-05"
    updated = versioned.resource("Patient", **read).save()
    assert updated["meta"]["versionId"] == "2"
    assert fhirpy.get("Patient", patient.id)["birthDate"] == "1981-04-05"

    # The same, now stale, version again: 412, which fhirpy raises as MultipleResourcesFound.
    read["birthDate"] = "1999-09-09"
    with pytest.raises(MultipleResourcesFound) as stale:
        versioned.resource("Patient", **read).save()
    assert "version 2" in str(stale.value)
    assert fhirpy.get("Patient", patient.id)["birthDate"] == "1981-04-05"

    with pytest.raises(ForbiddenError):
        fhirpy.delete("Patient", patient.id)
    SyncFHIRClient(url=base_url, authorization=steward_bearer).delete("Patient", patient.id)
    with pytest.raises(ResourceNotFound) as gone:  # fhirpy raises 404 and 410 alike
        fhirpy.get("Patient", patient.id)
    assert '"deleted"' in str(gone.value)
    with pytest.raises(ResourceNotFound) as unknown:
        fhirpy.get("Patient", UNKNOWN_ID)
    assert '"not-found"' in str(unknown.value)


def test_fhirpy_conditional_create_and_update_by_identifier(fhirpy, base_url, bearer):
    created = fhirpy.resource("Patient", **patient_resource(mrn="9002"))
    created.save()
    condition = f"identifier={MRN_SYSTEM}|9002"

    search = fhirpy.resources("Patient").search(identifier=f"{MRN_SYSTEM}|9002")
    # fhirpy's get_or_create() puts the condition in the POST's query string (an Aidbox
    # convention), which is no FHIR condition: refused, rather than read as a plain create
    # that would register a duplicate whenever the condition is not a unique identifier.
    with pytest.raises(FhirpyOutcome) as refused:
        search.get_or_create(fhirpy.resource("Patient", **patient_resource(mrn="9002")))
    assert "If-None-Exist" in str(refused.value)
    # FHIR's conditional create is the If-None-Exist header, sent like this:
    once = SyncFHIRClient(url=base_url, authorization=bearer, extra_headers={"If-None-Exist": condition})
    existing = once.resource("Patient", **patient_resource(mrn="9002", given=("Johnny",))).save()
    assert existing.id == created.id
    assert existing["name"][0]["given"] == ["John"]  # found, not written

    resource, was_created = search.update(
        fhirpy.resource("Patient", **patient_resource(mrn="9002", gender="female"))
    )
    assert was_created is False
    assert resource.id == created.id
    assert resource["gender"] == "female"
    assert resource["meta"]["versionId"] == "2"


def test_fhirpy_searches_and_pages_without_losing_or_repeating(fhirpy, paged_family):
    search = fhirpy.resources("Patient").search(family=paged_family).limit(PAGE)

    first_page = search.fetch()
    everything = search.fetch_all()  # follows the Bundle's next links

    assert len(first_page) == PAGE
    ids = [p.id for p in everything]
    assert len(ids) == PAGED
    assert len(set(ids)) == PAGED
    assert {p["name"][0]["given"][0] for p in everything} == {f"Given{n:02d}" for n in range(PAGED)}
    assert search.count() == PAGED

    # More criteria and a sort: they ride along in the next links, so order holds across pages.
    born_since_1970 = search.search(birthdate__ge="1970-01-01").sort("-given")
    givens = [p["name"][0]["given"][0] for p in born_since_1970.fetch_all()]
    assert givens == [f"Given{n:02d}" for n in range(PAGED - 1, 9, -1)]


def test_fhirpy_match(fhirpy):
    fhirpy.resource("Patient", **patient_resource(mrn="9003")).save()
    fhirpy.resource("Patient", **patient_resource(**JONES, mrn="9004")).save()

    bundle = fhirpy.execute(
        "Patient/$match", method="post", data=match_parameters(patient_resource(mrn="9003"))
    )

    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    assert matches[0]["resource"]["identifier"][0]["value"] == "9003"
    assert matches[0]["search"]["score"] > 0.9
    assert all(m["search"]["score"] < matches[0]["search"]["score"] for m in matches[1:])


# --- fhirclient (SMART on FHIR) -----------------------------------------------------------


@pytest.fixture
def smart_server(base_url):
    """``smart_server(bearer)``: a fhirclient server whose session sends that token."""
    clients = []

    def connect(authorization: str):
        client = FHIRClient(settings={"app_id": "mpi-interop-test", "api_base": base_url})
        client.server.session.headers["Authorization"] = authorization
        clients.append(client)
        return client.server

    yield connect
    for client in clients:
        client.server.session.close()  # its keep-alive connections hold server threads


@pytest.fixture
def smart(smart_server, bearer):
    return smart_server(bearer)


def test_fhirclient_reads_the_capability_statement(smart):
    statement = smart.capabilityStatement  # GET metadata, parsed by the strict R4 model

    assert isinstance(statement, CapabilityStatement)
    assert statement.fhirVersion == "4.0.1"
    assert "application/fhir+json" in statement.format
    patient = next(r for r in statement.rest[0].resource if r.type == "Patient")
    assert {"read", "vread", "create", "update", "delete", "search-type"} <= {
        i.code for i in patient.interaction
    }
    assert "match" in {op.name.lstrip("$") for op in patient.operation}
    assert smart.client.ready  # no SMART OAuth advertised: the bearer token is all it needs


def test_fhirclient_creates_reads_updates_with_version_and_deletes(smart, smart_server, steward_bearer):
    created = SmartPatient(patient_resource(mrn="9101")).create(smart)
    patient_id = created["id"]

    patient = SmartPatient.read(patient_id, smart)
    assert patient.name[0].family == "Smith"
    assert patient.meta.versionId == "1"
    assert patient.birthDate.isostring == "1980-03-04"

    # fhirclient's update() sends no If-Match either: set it on the session for the call.
    patient.name.append(HumanName({"use": "nickname", "given": ["Johnny"]}))
    smart.session.headers["If-Match"] = f'W/"{patient.meta.versionId}"'
    try:
        answer = patient.update(smart)
        assert answer["meta"]["versionId"] == "2"
        with pytest.raises(requests.HTTPError) as stale:  # the local copy is still version 1
            patient.update(smart)
        assert stale.value.response.status_code == 412
    finally:
        del smart.session.headers["If-Match"]
    again = SmartPatient.read(patient_id, smart)
    assert [n.use for n in again.name] == ["official", "nickname"]
    assert again.meta.versionId == "2"
    first = SmartPatient.read_from(f"Patient/{patient_id}/_history/1", smart)  # vread
    assert [n.use for n in first.name] == ["official"]

    with pytest.raises(FHIRPermissionDeniedException):
        patient.delete(smart)
    as_steward = smart_server(steward_bearer)
    patient.delete(as_steward)
    with pytest.raises(requests.HTTPError) as gone:  # fhirclient has no exception of its own for 410
        SmartPatient.read(patient_id, smart)
    assert gone.value.response.status_code == 410
    with pytest.raises(FHIRNotFoundException):
        SmartPatient.read(UNKNOWN_ID, smart)

    history = Bundle.read_from(f"Patient/{patient_id}/_history", as_steward)  # strict parse
    assert history.type == "history"
    assert [e.request.method for e in history.entry] == ["DELETE", "PUT", "POST"]


def test_fhirclient_searches_with_modifiers_and_follows_next_links(smart, paged_family):
    search = SmartPatient.where(struct={"family": paged_family, "_count": str(PAGE)})

    bundles = list(search.perform_iter(smart))
    resources = list(search.perform_resources_iter(smart))

    assert [len(b.entry) for b in bundles] == [PAGE, PAGE, PAGED - 2 * PAGE]
    assert all(b.total == PAGED for b in bundles)
    ids = [p.id for p in resources]
    assert len(ids) == PAGED
    assert len(set(ids)) == PAGED
    assert all(isinstance(p, SmartPatient) for p in resources)

    exact = SmartPatient.where(struct={"family": paged_family, "given": {"$exact": "Given03"}})
    assert [p.birthDate.isostring for p in exact.perform_resources_iter(smart)] == ["1963-01-01"]

    # fhirclient writes {"$gte": d} as "birthdate=>=d" (a pre-R4 syntax); R4 spells the
    # prefix "ge", which the struct can carry in the value. The old form is refused, not ignored.
    since_1970 = SmartPatient.where(
        struct={"family": paged_family, "birthdate": "ge1970-01-01", "_count": "10"}
    )
    assert len(list(since_1970.perform_resources_iter(smart))) == PAGED - 10
    old_style = SmartPatient.where(struct={"family": paged_family, "birthdate": {"$gte": "1970-01-01"}})
    with pytest.raises(requests.HTTPError) as refused:
        list(old_style.perform_resources_iter(smart))
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["issue"][0]["expression"] == ["birthdate"]


def test_fhirclient_match_through_a_raw_post(smart):
    SmartPatient(patient_resource(mrn="9103")).create(smart)
    SmartPatient(patient_resource(**JONES, mrn="9104")).create(smart)

    # fhirclient has no operation API; its server's post_json is the raw POST.
    response = smart.post_json("Patient/$match", match_parameters(patient_resource(mrn="9103")))

    bundle = Bundle(response.json())  # strict R4 parse of the match Bundle
    assert bundle.type == "searchset"
    best = bundle.entry[0]
    assert best.search.mode == "match"
    assert best.search.score > 0.9
    assert best.resource.identifier[0].value == "9103"
    assert all(e.search.score < best.search.score for e in bundle.entry[1:] if e.search.mode == "match")
