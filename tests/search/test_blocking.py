"""Candidate retrieval finds each kind of planted duplicate, and never a deleted patient."""

from dataclasses import replace
from datetime import date

import pytest
from django.db import connection

from patients.codes import LinkType
from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from patients.models import Link, Patient
from patients.services import delete_patient, register_patient
from search import keys
from search.blocking import (
    candidate_records,
    explain_blocks,
    find_candidate_records,
    find_candidates,
    find_candidates_many,
)
from search.indexing import reindex_patient
from tests.factories import MRN_SYSTEM, patient_data

pytestmark = pytest.mark.django_db

OTHER_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


@pytest.fixture
def registry(clerk):
    """Originals, plus look-alikes that are not the same person."""
    add = lambda **kw: register_patient(data=patient_data(**kw), actor=clerk)  # noqa: E731
    people = {
        "john": add(family="Smith", given=("John",), mrn="1", email="john@example.org"),
        "katharina": add(
            family="Schröder", given=("Katharina",), gender="female", birth_date=date(1991, 7, 23), mrn="2",
            phone="+49 30 1234567", postal_code="10115",
        ),
        "william": add(
            family="Okafor", given=("William",), birth_date=date(1968, 2, 14), mrn="3", phone=None
        ),
        "siobhan": add(
            family="Ní Bhriain", given=("Siobhán",), gender="female", birth_date=date(2001, 12, 5), mrn="4",
            phone=None,
        ),
    }  # fmt: skip
    # Look-alikes: same family and year, different people.
    for n, given in enumerate(("Jane", "James", "Joan", "Peter")):
        add(family="Smith", given=(given,), birth_date=date(1980, 1 + n, 10), mrn=f"s{n}", phone=None)
    return people


def dup(family, given, birth_date, *, phone=None, email=None, mrn="dup", postal_code="99999"):
    """A duplicate as another facility would register it: its own MRN, maybe new address."""
    contacts = [ContactData(system="phone", value=phone)] if phone else []
    contacts += [ContactData(system="email", value=email)] if email else []
    return PatientData(
        names=(NameData(family=family, given=given),),
        birth_date=birth_date,
        identifiers=(IdentifierData(system=OTHER_SYSTEM, value=mrn),),
        addresses=(AddressData(line=("9 Elm Rd",), city="Springfield", postal_code=postal_code),),
        contacts=tuple(contacts),
    )


def found(probe, registry, key, **kwargs):
    candidates = {c.patient_id: c for c in find_candidates(probe, **kwargs)}
    assert registry[key].pk in candidates, f"{key} not among {len(candidates)} candidates"
    return candidates[registry[key].pk].blocks


@pytest.mark.parametrize(
    ("kind", "key", "probe"),
    [
        ("family typo", "john", dup("Smiht", ("John",), date(1980, 3, 4))),
        ("given typo", "john", dup("Smith", ("Jonh",), date(1980, 3, 4))),
        ("nickname", "william", dup("Okafor", ("Bill",), date(1968, 2, 14))),
        ("swapped names", "william", dup("William", ("Okafor",), date(1968, 2, 14))),
        ("day and month swapped", "katharina", dup("Schroder", ("Katharina",), date(1991, 7, 23))),
        ("transposed year", "john", dup("Smith", ("John",), date(1908, 3, 4))),
        ("year off by one", "william", dup("Okafor", ("William",), date(1969, 2, 14))),
        ("married name", "katharina", dup("Weber", ("Katharina",), date(1991, 7, 23))),
        ("accents dropped", "siobhan", dup("Ni Bhriain", ("Siobhan",), date(2001, 12, 5))),
        ("typo and wrong date", "katharina", dup("Schrader", ("Katharina",), date(1991, 7, 24))),
        (
            "name changed, phone kept", "katharina",
            dup("Weber", ("Kathy",), date(1990, 1, 1), phone="030 1234567"),
        ),
        ("email kept, no birth date", "john", dup("Smith", ("J",), None, email="JOHN@example.org")),
        ("no birth date", "william", dup("Okafor", ("William",), None)),
    ],
)  # fmt: skip
def test_finds_each_kind_of_planted_duplicate(registry, kind, key, probe):
    assert found(probe, registry, key)


def test_reports_which_blocks_found_a_candidate(registry):
    probe = dup("Smith", ("John",), date(1980, 3, 4), email="john@example.org")
    blocks = found(probe, registry, "john")
    assert {"email", "family_year", "name_date", "date_initial", "name_pair"} <= set(blocks)
    assert "swapped_names" in found(dup("William", ("Okafor",), date(1968, 2, 14)), registry, "william")


def test_a_mangled_name_without_birth_date_is_found_at_the_same_address(registry):
    # A new married name and a nickname, no birth date: only the street and postcode
    # of the home address are left to meet the original by.
    probe = replace(
        dup("Weber", ("Kathy",), None),
        addresses=(AddressData(line=("1 Main Street",), city="Berlin", postal_code="10115"),),
    )
    assert found(probe, registry, "katharina") == ("street_postcode",)


def test_street_keys_use_the_street_name_not_its_type_or_unit():
    assert keys.street_names(["Apt 3, 12 Main St", "Flat 2"]) == ["main"]
    assert keys.street_names(["Homeless", "No fixed abode", "PO Box 12"]) == []
    assert keys.street_postcode([(("12 Main St",), "02134"), (("7 Oak Rd",), "")]) == {"ap:MN:02134"}
    # A mistyped street name keys alike (phonetic), a neighbour's house number too.
    assert keys.street_postcode([(("14 Mian Street",), "02134")]) == {"ap:MN:02134"}


def test_the_same_identifier_finds_the_record(registry):
    probe = replace(dup("Nobody", ("Else",), None), identifiers=(IdentifierData(MRN_SYSTEM, "3"),))
    assert found(probe, registry, "william") == ("identifier",)


def test_exact_record_ranks_first_among_look_alikes(registry):
    candidates = find_candidates(dup("Smith", ("John",), date(1980, 3, 4)))
    assert candidates[0].patient_id == registry["john"].pk
    assert len(candidates) >= 2  # the other Smiths born around 1980 are candidates too


def test_limit_and_exclude(registry):
    probe = dup("Smith", ("John",), date(1980, 3, 4))
    assert len(find_candidates(probe, limit=2)) == 2
    ids = [c.patient_id for c in find_candidates(probe, exclude=registry["john"].pk)]
    assert registry["john"].pk not in ids


def test_many_probes_in_one_pipeline_find_what_one_at_a_time_finds(registry):
    from patients.queries import load_patient_data

    stored = load_patient_data(p.pk for p in registry.values())
    probes = {**stored, -1: PatientData()}  # one probe with nothing to compare
    found = find_candidates_many(probes, limit=5)
    assert found == {pid: find_candidates(probe, limit=5, exclude=pid) for pid, probe in probes.items()}
    assert found[-1] == [] and any(found[pid] for pid in stored)


def test_candidates_with_their_records_in_one_statement_equal_the_two_lookups(registry):
    for probe, kwargs in [
        (dup("Smith", ("John",), date(1980, 3, 4)), {}),
        (dup("Smith", ("John",), date(1980, 3, 4)), {"limit": 2, "exclude": registry["john"].pk}),
        (dup("Okafor", ("William",), date(1968, 2, 14)), {}),
        (PatientData(), {}),  # nothing to compare
    ]:
        candidates = find_candidates(probe, **kwargs)
        records = candidate_records([c.patient_id for c in candidates])
        expected = [(c, *records[c.patient_id]) for c in candidates]
        assert find_candidate_records(probe, **kwargs) == expected


def test_never_returns_deleted_patients(registry, steward):
    delete_patient(patient=registry["john"], actor=steward)
    probe = dup("Smith", ("John",), date(1980, 3, 4), email="john@example.org")
    assert registry["john"].pk not in [c.patient_id for c in find_candidates(probe)]


def test_never_returns_merged_away_patients(registry):
    merged = registry["william"]
    Patient.all_objects.filter(pk=merged.pk).update(active=False)
    Link.objects.create(patient=merged, other=registry["john"], type=LinkType.REPLACED_BY)
    merged.refresh_from_db()
    reindex_patient(merged)
    assert merged.pk not in [
        c.patient_id for c in find_candidates(dup("Okafor", ("William",), date(1968, 2, 14)))
    ]


def test_probe_without_anything_to_compare_has_no_candidates(registry):
    assert find_candidates(PatientData()) == []
    assert find_candidates(PatientData(names=(NameData(family=""),), gender="male")) == []


def test_probe_that_fails_validation_still_uses_its_readable_parts(registry):
    probe = replace(
        dup("Smith", ("John",), date(1980, 3, 4)),
        gender="M",  # not a FHIR code
        contacts=(ContactData(system="email", value="not an email"), ContactData(system="phone", value="x")),
    )
    assert found(probe, registry, "john")


def test_a_very_common_name_stays_bounded(clerk, registry):
    for n in range(12):
        register_patient(
            data=patient_data(
                family="Smith", given=("John",), birth_date=date(1980, 3, 4), mrn=f"c{n}", phone=None
            ),
            actor=clerk,
        )
    candidates = find_candidates(dup("Smith", ("John",), date(1980, 3, 4)), limit=5)
    assert len(candidates) == 5


def test_every_block_can_use_an_index(registry):
    probe = dup("Smith", ("John",), date(1980, 3, 4), phone="+1 617 555 0100", email="john@example.org")
    probe = replace(probe, identifiers=(IdentifierData(MRN_SYSTEM, "1"),))
    # The fixture table is tiny, so the planner would rightly scan it; forbidding
    # sequential scans shows each block has an index path. The benchmark shows the
    # plans PostgreSQL picks by itself on a million rows.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plans = explain_blocks(probe)
    assert set(plans) == {
        "identifier", "phone", "email", "family_year", "swapped_names",
        "date_initial", "name_date", "name_pair", "name_postcode", "street_postcode",
    }  # fmt: skip
    for name, plan in plans.items():
        assert "Seq Scan on search_patientindex" not in plan, f"{name}:\n{plan}"
        assert "search_patientindex" in plan and "Index" in plan, f"{name}:\n{plan}"


@pytest.mark.django_db
def test_every_gin_index_keeps_a_short_pending_list():
    """Lookups scan a GIN index's whole pending list: with PostgreSQL's 4 MB default, a
    trickle of registrations made candidate retrieval several times slower (docs/bench.md)."""
    from search.models import GIN_PENDING_LIST_KB

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reloptions FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am a ON a.oid = c.relam JOIN pg_class t ON t.oid = i.indrelid"
            " WHERE a.amname = 'gin' AND t.relname IN ('search_patientindex', 'search_nameword')"
        )
        found = dict(cursor.fetchall())
    assert len(found) == 11
    limit = f"gin_pending_list_limit={GIN_PENDING_LIST_KB}"
    assert all(limit in (options or []) for options in found.values()), found
