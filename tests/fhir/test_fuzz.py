"""Hypothesis fuzzing of the FHIR API: generated Patients, Bundles, Parameters, raw bodies
and search strings (NUL bytes, lone surrogates, 100k-character strings, 10**40, NaN,
lists where objects belong, 200-deep nesting, bytes that are not JSON or not UTF-8).

Properties, for every response: no server error (status < 500); content type
``application/fhir+json`` whenever there is a body; every error (>= 400) is an
OperationOutcome with at least one issue that has ``diagnostics``.

``MPI_FUZZ_EXAMPLES`` sets the examples per test (default 40: the file runs in well under
a minute); ``make fuzz-fhir`` runs 500 with a random seed (``MPI_FUZZ_RANDOM=1``).
Every failure found here got a fix and a plain regression test at the end of this file.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients.services import register_patient
from tests.factories import MRN_SYSTEM, patient_data
from tests.fhir.conftest import FHIR_JSON, FhirClient

EXAMPLES = int(os.environ.get("MPI_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("MPI_FUZZ_RANDOM") != "1",  # the same cases in the regular suite
    database=None,
    suppress_health_check=list(HealthCheck),
)

# --- Strategies ---------------------------------------------------------------------------------

NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None), max_size=20),  # lone surrogates included
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",
            "x\udfff",
            "\u202e",
            "😀",
            "Ω" * 50,
            "'; DROP TABLE x; --",
            "%00",
            "\\",
            "|",
            ",",
            "$",
            "urn:uuid:",
            "Patient/",
            "1980-02-30",
            "9999-12-31",
            "0000-01-01",
        ]
    ),
    st.builds(
        lambda ch, n: ch * n, st.sampled_from(["a", "é", "\x00", "9"]), st.sampled_from([256, 5000, 100_000])
    ),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, -1, 2**31, 2**63, 10**40, -(10**40)]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(NASTY_TEXT, NUMBERS, st.booleans(), st.none())


def _quote(value: str, safe: str = "") -> str:
    """Percent-encoded; a lone surrogate becomes bytes that are not UTF-8 (as a client could send)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe=safe)


def _nested(depth: int, leaf):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"extension": value}
    return value


JUNK = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(NASTY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
) | st.builds(_nested, st.sampled_from([50, 200, 400]), SCALARS)

# Values that are nearly right, so the generated resources get past the first checks.
GOOD = {
    "gender": st.sampled_from(["male", "female", "other", "unknown"]),
    "birthDate": st.sampled_from(["1980-03-04", "1980", "1980-03", "2100-01-01"]),
    "active": st.booleans(),
    "name": st.lists(
        st.fixed_dictionaries(
            {"family": NASTY_TEXT},
            optional={
                "given": st.lists(NASTY_TEXT, max_size=3),
                "use": st.sampled_from(["official", "usual", "x"]),
                "text": NASTY_TEXT,
                "prefix": st.lists(SCALARS, max_size=2),
            },
        ),
        max_size=3,
    ),
    "identifier": st.lists(
        st.fixed_dictionaries(
            {"value": NASTY_TEXT},
            optional={
                "system": st.one_of(st.just(MRN_SYSTEM), NASTY_TEXT),
                "use": SCALARS,
                "type": st.one_of(
                    JUNK,
                    st.just(
                        {
                            "coding": [
                                {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                            ]
                        }
                    ),
                ),
            },
        ),
        max_size=3,
    ),
    "telecom": st.lists(
        st.fixed_dictionaries(
            {"system": st.sampled_from(["phone", "email", "fax", "bogus"]), "value": NASTY_TEXT},
            optional={"rank": NUMBERS, "use": SCALARS},
        ),
        max_size=3,
    ),
    "address": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "line": st.lists(NASTY_TEXT, max_size=3),
                "city": NASTY_TEXT,
                "postalCode": NASTY_TEXT,
                "country": NASTY_TEXT,
                "period": st.fixed_dictionaries({"start": NASTY_TEXT}),
            },
        ),
        max_size=2,
    ),
    "link": st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["seealso", "refer", "replaced-by", "replaces", "x"]),
                "other": st.fixed_dictionaries(
                    {
                        "reference": st.one_of(
                            NASTY_TEXT, st.just("Patient/0f6a1a4e-0000-4000-8000-000000000001")
                        )
                    }
                ),
            },
        ),
        max_size=2,
    ),
    "deceasedBoolean": st.booleans(),
    "multipleBirthInteger": NUMBERS,
    "extension": JUNK,
    "meta": st.one_of(JUNK, st.fixed_dictionaries({"versionId": SCALARS})),
    "id": SCALARS,
}
PATIENT_KEYS = st.sampled_from([*sorted(GOOD), "contact", "photo", "managingOrganization", "bogusElement"])


@st.composite
def patients(draw) -> dict:
    """A Patient-shaped dict: each element right, nearly right or junk."""
    resource = {"resourceType": draw(st.sampled_from(["Patient"] * 8 + ["Observation", "", None, 7]))}
    for key in draw(st.lists(PATIENT_KEYS, max_size=6, unique=True)):
        strategy = GOOD.get(key, JUNK)
        resource[key] = draw(st.one_of(strategy, JUNK) if draw(st.booleans()) else strategy)
    return resource


BODIES = st.one_of(
    patients().map(lambda r: json.dumps(r).encode()),
    JUNK.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"{",
            b"null",
            b"[]",
            b'"Patient"',
            b"NaN",
            b'{"resourceType": "Patient", "birthDate": NaN}',
            b'{"resourceType": "Patient", "multipleBirthInteger": Infinity}',
            b"\xff\xfe{}",
            b'{"a": 1, "a": 2}',
            b'{"resourceType": "Patient", "name": [{"family": "\\u0000"}]}',
            b'{"resourceType": "Patient", "name": [{"family": "\\ud800"}]}',
            b"[" * 5000 + b"]" * 5000,
        ]
    ),
)
REFERENCES = st.one_of(
    NASTY_TEXT,
    st.sampled_from(
        [
            "urn:uuid:0f6a1a4e-0000-4000-8000-000000000001",
            "urn:uuid:nope",
            "Patient/123",
            "Patient/0f6a1a4e-0000-4000-8000-000000000009",
            "http://x/fhir/Patient/abc",
        ]
    ),
)


@st.composite
def entries(draw) -> dict:
    entry: dict = {}
    if draw(st.booleans()):
        entry["fullUrl"] = draw(REFERENCES)
    if draw(st.integers(0, 9)):
        entry["request"] = {
            "method": draw(
                st.one_of(st.sampled_from(["POST", "PUT", "GET", "DELETE", "HEAD", "PATCH"]), SCALARS)
            ),
            "url": draw(
                st.one_of(
                    st.sampled_from(["Patient", "Patient/", "Patient?identifier=a|b", "metadata"]),
                    REFERENCES.map(lambda r: f"Patient/{r}"),
                    NASTY_TEXT,
                )
            ),
        }
        if draw(st.booleans()):
            entry["request"]["ifMatch"] = draw(NASTY_TEXT)
    if draw(st.integers(0, 3)):
        resource = draw(patients())
        if draw(st.booleans()):
            resource["link"] = [{"type": "seealso", "other": {"reference": draw(REFERENCES)}}]
        entry["resource"] = resource
    return draw(st.one_of(st.just(entry), JUNK)) if draw(st.integers(0, 5)) == 0 else entry


@st.composite
def bundles(draw) -> dict:
    bundle = {
        "resourceType": draw(st.sampled_from(["Bundle"] * 6 + ["Patient", None])),
        "type": draw(st.one_of(st.sampled_from(["transaction", "batch", "searchset", "history"]), SCALARS)),
    }
    if draw(st.integers(0, 5)):
        bundle["entry"] = draw(st.one_of(st.lists(entries(), max_size=4), JUNK))
    return bundle


SEARCH_NAMES = st.one_of(
    st.sampled_from(
        [
            "_id",
            "identifier",
            "family",
            "given",
            "name",
            "birthdate",
            "gender",
            "telecom",
            "phone",
            "email",
            "address",
            "address-city",
            "active",
            "link",
            "_lastUpdated",
            "_count",
            "_offset",
            "_sort",
            "_total",
            "_summary",
            "_elements",
            "_format",
            "mothersMaidenName",
            "_has",
        ]
    ),
    NASTY_TEXT,
)
MODIFIERS = st.sampled_from(
    ["", "", "", ":exact", ":contains", ":missing", ":not", ":text", ":of-type", ":Patient", ":above", ":"]
)
SEARCH_VALUES = st.one_of(
    NASTY_TEXT,
    NUMBERS.map(str),
    st.builds(
        lambda p, d: p + d,
        st.sampled_from(["", "eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap", "zz"]),
        st.sampled_from(
            [
                "1980",
                "1980-03",
                "1980-03-04",
                "1980-02-30",
                "1980-03-04T10:00:00Z",
                "1980-03-04T25:61",
                "99999",
                "2024-01-01T00:00:00+99:00",
                "",
                "9999-12-31",
                "9999-12",
                "0001-01-01",
                "9999-12-31T23:59:59Z",
                "0001",
            ]
        ),
    ),
    st.sampled_from(
        [
            "a|b",
            "|77",
            "urn:oid:1.2|",
            "a|b|c",
            "x\\,y",
            "male,female",
            "-family,given",
            "Patient/0f6a1a4e-0000-4000-8000-000000000001",
            "true",
            "%ZZ",
        ]
    ),
)


@st.composite
def query_strings(draw, names=SEARCH_NAMES) -> str:
    pairs = draw(st.lists(st.tuples(names, MODIFIERS, SEARCH_VALUES), max_size=5))
    parts = [f"{_quote(n)}{m}={_quote(v, safe='|,:')}" for n, m, v in pairs]
    if draw(st.integers(0, 4)) == 0:
        parts.append(
            draw(st.sampled_from(["%", "%FF%FE=1", "a=%00", "=", "&&", "x", "_count=99999999999999999999"]))
        )
    return "&".join(parts)


# --- The properties -------------------------------------------------------------------------------


def check(response) -> None:
    status = response.status_code
    assert status < 500, (status, response.content[:2000])
    if not response.content:
        return
    assert response["Content-Type"].startswith(FHIR_JSON), response["Content-Type"]
    body = json.loads(response.content)
    if status >= 400:
        assert body["resourceType"] == "OperationOutcome", body
        assert body["issue"] and any(i.get("diagnostics") for i in body["issue"]), body


def _client(user) -> FhirClient:
    from accounts.services import issue_token

    _, plain = issue_token(user=user, name=f"{user.username} fuzz")
    return FhirClient(plain, raise_request_exception=False)


@pytest.fixture
def world(transactional_db, clerk, integrator, steward, auditor) -> dict:
    # Transactional: each request commits or fails on its own, as in production, so one
    # refused statement cannot poison the requests after it.
    patient = register_patient(data=patient_data(), actor=clerk, reason="fuzz")
    other = register_patient(
        data=patient_data(family="Jones", mrn="501", phone=None), actor=clerk, reason="fuzz"
    )
    return {
        "integrator": _client(integrator),
        "steward": _client(steward),
        "auditor": _client(auditor),
        "patient": str(patient.uuid),
        "other": str(other.uuid),
    }


def _send(client, method: str, path: str, body: bytes, content_type: str = FHIR_JSON):
    return getattr(super(FhirClient, client), method)(path, body, content_type=content_type)


def test_create_survives_generated_patients(world):
    @FUZZ
    @given(
        body=BODIES, content_type=st.sampled_from([FHIR_JSON] * 4 + ["application/json", "text/plain", ""])
    )
    def run(body, content_type):
        check(_send(world["integrator"], "post", "/fhir/Patient", body, content_type))

    run()


def test_update_survives_generated_patients(world):
    @FUZZ
    @given(resource=patients(), conditional=st.booleans(), if_match=st.one_of(st.none(), NASTY_TEXT))
    def run(resource, conditional, if_match):
        if isinstance(resource, dict) and resource.get("id") is not None and resource.get("id") != "x":
            resource["id"] = world["patient"] if conditional else resource["id"]
        path = (
            f"/fhir/Patient?identifier={quote(MRN_SYSTEM)}|77"
            if conditional
            else f"/fhir/Patient/{world['patient']}"
        )
        extra = {"HTTP_IF_MATCH": if_match} if if_match and "\x00" not in if_match else {}
        client = world["integrator"]
        check(super(FhirClient, client).put(path, json.dumps(resource), content_type=FHIR_JSON, **extra))

    run()


def test_bundles_survive_generated_entries(world):
    @FUZZ
    @given(bundle=bundles())
    def run(bundle):
        check(world["steward"].post("/fhir", bundle))

    run()


def test_search_survives_generated_query_strings(world):
    @FUZZ
    @given(query=query_strings(), form=st.booleans())
    def run(query, form):
        client = world["integrator"]
        if form:
            check(
                _send(
                    client,
                    "post",
                    "/fhir/Patient/_search",
                    query.encode(),
                    "application/x-www-form-urlencoded",
                )
            )
        else:
            check(client.get(f"/fhir/Patient?{query}"))

    run()


def test_operations_survive_generated_parameters(world):
    names = st.sampled_from(
        [
            "resource",
            "onlyCertainMatches",
            "count",
            "source-patient",
            "target-patient",
            "source-patient-identifier",
            "target-patient-identifier",
            "result-patient",
            "preview",
            "reason",
            "merge",
            "sourceIdentifier",
            "targetSystem",
            "bogus",
        ]
    )
    values = st.one_of(
        patients().map(lambda r: {"resource": r}),
        st.builds(lambda v: {"valueReference": {"reference": v}}, REFERENCES),
        st.builds(lambda v: {"valueIdentifier": {"system": MRN_SYSTEM, "value": v}}, NASTY_TEXT),
        st.builds(lambda v: {"valueInteger": v}, NUMBERS),
        st.builds(lambda v: {"valueBoolean": v}, SCALARS),
        st.builds(lambda v: {"valueString": v}, NASTY_TEXT),
        JUNK.map(lambda v: {"part": v}),
    )
    parameters = st.builds(
        lambda items, rt: {"resourceType": rt, "parameter": [{"name": n, **v} for n, v in items]},
        st.lists(st.tuples(names, values), max_size=5),
        st.sampled_from(["Parameters"] * 5 + ["Patient"]),
    )

    @FUZZ
    @given(
        operation=st.sampled_from(["$match", "$merge", "$unmerge", "$ihe-pix"]),
        body=st.one_of(parameters, JUNK),
        query=query_strings(names=st.sampled_from(["sourceIdentifier", "targetSystem", "_format", "x"])),
    )
    def run(operation, body, query):
        client = world["steward"] if operation in ("$merge", "$unmerge") else world["integrator"]
        if operation == "$ihe-pix":
            check(client.get(f"/fhir/Patient/$ihe-pix?{query}"))
        check(client.post(f"/fhir/Patient/{operation}", json.dumps(body), HTTP_X_CHANGE_REASON="fuzz"))

    run()


def test_reads_and_history_survive_generated_ids_and_parameters(world):
    ids = st.one_of(NASTY_TEXT.map(_quote), st.just(world["patient"]), st.just(world["other"]))

    @FUZZ
    @given(
        id=ids,
        vid=st.one_of(NUMBERS.map(str), NASTY_TEXT.map(_quote)),
        query=query_strings(names=st.sampled_from(["_count", "_page", "_since", "_format", "_summary"])),
        method=st.sampled_from(["get", "delete", "head", "options", "patch"]),
    )
    def run(id, vid, query, method):
        steward = world["steward"]
        check(steward.get(f"/fhir/Patient/{id}/_history?{query}"))
        check(steward.get(f"/fhir/Patient/{id}/_history/{vid}"))
        check(steward.get(f"/fhir/Patient/_history?{query}"))
        if method != "delete" or id not in (world["patient"], world["other"]):
            check(getattr(steward, method)(f"/fhir/Patient/{id}?{query}"))

    run()


def test_audit_event_search_survives_generated_query_strings(world):
    names = st.one_of(
        st.sampled_from(
            [
                "patient",
                "agent",
                "altid",
                "address",
                "date",
                "action",
                "subtype",
                "outcome",
                "_count",
                "_sort",
                "_cursor",
                "_format",
            ]
        ),
        NASTY_TEXT,
    )

    @FUZZ
    @given(query=query_strings(names=names), id=st.one_of(NUMBERS.map(str), NASTY_TEXT.map(_quote)))
    def run(query, id):
        check(world["auditor"].get(f"/fhir/AuditEvent?{query}"))
        check(world["auditor"].get(f"/fhir/AuditEvent/{id}"))

    run()


# --- Regressions: what the fuzzing found, as plain tests ------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "birthdate=9999-12-31",  # the day after it overflowed Python's date: was a 500
        "birthdate=9999-12",
        "_lastUpdated=gt9999-12-31T23:59:59Z",
    ],
)
def test_a_date_at_the_end_of_the_calendar_is_a_400_naming_the_parameter(as_integrator, query):
    response = as_integrator.get(f"/fhir/Patient?{query}")
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == [query.split("=")[0]] and "not a valid date" in issue["diagnostics"]


@pytest.mark.parametrize("value", ["ap0001", "ap9999-12-30", "ap0001-01-01", "ap9999-12-30T10:00:00Z"])
def test_approximate_dates_at_the_calendar_ends_are_searched(as_integrator, smith, value):
    param = "_lastUpdated" if "T" in value else "birthdate"
    response = as_integrator.get(f"/fhir/Patient?{param}={value}")
    assert response.status_code == 200, response.content  # the ±10% window was an OverflowError
    assert response.json()["type"] == "searchset"


def test_audit_event_dates_at_the_calendar_end_are_a_400(as_auditor):
    response = as_auditor.get("/fhir/AuditEvent?date=ge9999-12-31")
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["date"]


def test_a_database_refusal_names_the_rule_broken(as_integrator):
    body = {"resourceType": "Patient", "name": [{"family": "a\u0000b"}]}
    response = as_integrator.post("/fhir/Patient", body)
    assert response.status_code == 400
    assert "NUL" in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("depth", [150, 400])
def test_a_bundle_nested_hundreds_deep_is_a_400(as_steward, depth):
    # 400 deep inside a Bundle entry was a RecursionError in the structure check: a 500.
    patient = {"resourceType": "Patient", "name": [{"family": "Deep"}], "extension": _nested(depth, 1)}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": patient}],
    }
    response = as_steward.post("/fhir", bundle)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] == "structure" and "nested more than 100" in issue["diagnostics"]


def test_nesting_within_the_limit_still_reaches_validation(as_integrator):
    patient = {"resourceType": "Patient", "name": [{"family": "Deep"}], "extension": _nested(60, 1)}
    response = as_integrator.post("/fhir/Patient", patient)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"][0].startswith("Patient.extension")
