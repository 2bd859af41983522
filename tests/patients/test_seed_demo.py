import csv
from collections import Counter
from io import StringIO

import jellyfish
import phonenumbers
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from faker.providers.person.en_US import Provider as UsNames

from patients.data import clean_patient_data
from patients.demo import CORRUPTIONS, FACILITIES, SSN_SYSTEM, TRUTH_COLUMNS, generate_demo
from patients.demo_population import fold_accents, nicknames_of
from patients.management.commands.seed_demo import Command as SeedDemo
from patients.models import Identifier, Organization, Patient

N = 300


@pytest.fixture(scope="module")
def demo():
    return generate_demo(N, seed=7)


def _originals(demo):
    return {r.person_id: r for r in demo if r.kind != "duplicate"}


def _full_name(data):
    return " ".join([*data.names[0].given, data.names[0].family])


def _phones(data):
    return {c.value for c in data.contacts if c.system == "phone"}


# -- the generator (no database) ---------------------------------------------------------------


def test_same_seed_gives_the_same_records_and_another_seed_others(demo):
    assert generate_demo(N, seed=7) == demo
    other = generate_demo(N, seed=8)
    assert [r.data for r in other] != [r.data for r in demo]


def test_generates_exactly_n_records_about_a_sixth_duplicates(demo):
    kinds = Counter(r.kind for r in demo)
    assert len(demo) == N
    assert 0.14 * N <= kinds["duplicate"] <= 0.20 * N
    assert generate_demo(0, seed=1).records == ()
    with pytest.raises(ValueError):
        generate_demo(-1, seed=1)


def test_every_planted_kind_is_present_in_a_small_set(demo):
    assert set(demo.corruption_counts()) == set(CORRUPTIONS)
    assert all(r.corruptions for r in demo if r.kind == "duplicate")
    assert not any(r.corruptions for r in demo if r.kind != "duplicate")


def _shows(kind, dup, orig) -> bool:
    """Whether a duplicate with this one planted kind differs from its original that way."""
    d, o = dup.names[0], orig.names[0]
    checks = {
        "married-name": lambda: dup.gender == "female" and d.family != o.family and d.given[0] == o.given[0],
        "nickname": lambda: d.given[0] in nicknames_of(o.given[0]) and d.family == o.family,
        "typo-family": lambda: jellyfish.damerau_levenshtein_distance(d.family, o.family) == 1,
        "typo-given": lambda: jellyfish.damerau_levenshtein_distance(d.given[0], o.given[0]) == 1,
        "swapped-names": lambda: (d.family, d.given[0]) == (o.given[0], o.family),
        "transposed-date": lambda: (
            (dup.birth_date.day, dup.birth_date.month) == (orig.birth_date.month, orig.birth_date.day)
        ),
        "moved-address": lambda: dup.addresses and dup.addresses != orig.addresses,
        "missing-phone": lambda: _phones(orig) and not _phones(dup),
        "missing-email": lambda: not any(c.system == "email" for c in dup.contacts),
        "missing-address": lambda: orig.addresses and not dup.addresses,
        "missing-birth-date": lambda: orig.birth_date and dup.birth_date is None,
        "accents-dropped": lambda: _full_name(dup) == fold_accents(_full_name(orig)) != _full_name(orig),
        "upper-case": lambda: _full_name(dup) == _full_name(orig).upper(),
    }
    return bool(checks[kind]())


def test_each_planted_kind_really_changes_the_duplicate_that_way():
    demo = generate_demo(1000, seed=3)
    originals = _originals(demo)
    singles = [r for r in demo if len(r.corruptions) == 1]
    assert {r.corruptions[0] for r in singles} == set(CORRUPTIONS)
    for r in singles:
        orig = originals[r.person_id].data
        assert _shows(r.corruptions[0], r.data, orig), (r.corruptions, r.data, orig)
        untouched = (
            ("birth_date", "gender")
            if r.corruptions[0] not in ("transposed-date", "missing-birth-date")
            else ()
        )
        assert all(getattr(r.data, f) == getattr(orig, f) for f in untouched)


def test_twins_are_two_persons_sharing_family_birth_date_address_and_phone(demo):
    assert demo.twin_pairs
    by_person = _originals(demo)
    for a, b in demo.twin_pairs:
        first, second = by_person[a], by_person[b]
        assert first.kind == second.kind == "twin" and first.person_id != second.person_id
        assert first.data.names[0].family == second.data.names[0].family
        assert first.data.names[0].given[0] != second.data.names[0].given[0]
        # Nor nicknames of each other (with the supplement: no Katherine and Katie twins).
        assert first.data.names[0].given[0] not in nicknames_of(second.data.names[0].given[0])
        assert second.data.names[0].given[0] not in nicknames_of(first.data.names[0].given[0])
        assert first.data.birth_date == second.data.birth_date
        assert first.data.addresses == second.data.addresses
        assert not _phones(first.data) or _phones(second.data) <= _phones(first.data)
        assert (first.data.multiple_birth, second.data.multiple_birth) == (True, True)
        assert {first.data.multiple_birth_order, second.data.multiple_birth_order} == {1, 2}


def test_generated_records_pass_validation_with_valid_us_phone_numbers(demo):
    for record in demo:
        cleaned = clean_patient_data(record.data)
        for contact in cleaned.contacts:
            if contact.system == "phone":
                number = phonenumbers.parse(contact.normalized_value)
                assert phonenumbers.is_valid_number(number), contact.value
                assert number.country_code == 1


def test_no_two_records_share_a_live_identifier(demo):
    keys = [(i.system, i.value) for r in demo for i in r.data.identifiers]
    assert len(keys) == len(set(keys))
    systems = Counter(i.system for r in demo for i in r.data.identifiers)
    assert set(systems) == {f.identifier_system for f in FACILITIES} | {SSN_SYSTEM}
    assert 0.2 * N <= systems[SSN_SYSTEM] <= 0.4 * N


def test_a_persons_records_come_from_different_facilities(demo):
    mrn_systems = {f.identifier_system for f in FACILITIES}
    by_person = {}
    for r in demo:
        by_person.setdefault(r.person_id, []).extend(i.system for i in r.data.identifiers)
    for systems in by_person.values():
        mrns = [s for s in systems if s in mrn_systems]
        assert len(mrns) == len(set(mrns))
        assert systems.count(SSN_SYSTEM) <= 1


def test_given_names_match_the_gender_and_some_names_are_not_ascii():
    demo = generate_demo(1000, seed=5)
    intl = 0
    for r in demo:
        if r.kind == "duplicate":
            continue
        given = r.data.names[0].given[0]
        if r.data.gender == "male" and given.isascii():
            assert given in UsNames.first_names_male
        if r.data.gender == "female" and given.isascii():
            assert given in UsNames.first_names_female
        intl += not _full_name(r.data).isascii()
    assert 0.04 * len(demo) <= intl <= 0.2 * len(demo)


# -- the commands (database) -------------------------------------------------------------------


def _seed(tmp_path, *args):
    out = StringIO()
    call_command("seed_demo", "--truth", str(tmp_path / "truth.csv"), *args, stdout=out)
    return out.getvalue()


def _truth(tmp_path):
    with (tmp_path / "truth.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_seed_demo_registers_through_the_service_and_writes_a_consistent_truth(db, tmp_path):
    out = _seed(tmp_path, "--patients", "60", "--seed", "2", "--batch-size", "25")

    assert Patient.objects.count() == 60
    assert Patient.history.filter(history_change_reason="Demo data", history_type="+").count() == 60
    assert (
        Organization.objects.filter(identifier_system__in=[f.identifier_system for f in FACILITIES]).count()
        == 3
    )
    assert Patient.objects.filter(managing_organization__isnull=False).exists()
    rows = _truth(tmp_path)
    assert len(rows) == 60 and tuple(rows[0]) == TRUTH_COLUMNS
    uuids = {row["patient_uuid"] for row in rows}
    assert set(map(str, Patient.objects.values_list("uuid", flat=True))) == uuids
    duplicates = [row for row in rows if row["record_kind"] == "duplicate"]
    assert duplicates and all(row["corruption"] for row in duplicates)
    persons = {row["person_id"] for row in rows if row["record_kind"] != "duplicate"}
    assert {row["person_id"] for row in duplicates} <= persons
    assert "60 patients" in out and "patients/s" in out and str(tmp_path / "truth.csv") in out


def test_seed_demo_if_empty_does_nothing_the_second_time(db, tmp_path):
    _seed(tmp_path, "--patients", "30", "--if-empty")
    history = Patient.history.count()

    out = _seed(tmp_path, "--patients", "30", "--if-empty")

    assert "no demo data loaded" in out
    assert Patient.objects.count() == 30 and Patient.history.count() == history


def test_seed_demo_again_on_a_full_database_skips_records_whose_identifiers_are_taken(db, tmp_path):
    _seed(tmp_path, "--patients", "30")

    out = _seed(tmp_path, "--patients", "30")

    assert "records refused" in out
    keys = list(Identifier.objects.filter(live=True).values_list("system", "value"))
    assert len(keys) == len(set(keys))
    assert len(_truth(tmp_path)) == Patient.objects.count() - 30


def test_seed_demo_rejects_bad_arguments_and_documents_the_truth_format(db, tmp_path):
    with pytest.raises(CommandError, match="negative"):
        _seed(tmp_path, "--patients", "-1")
    with pytest.raises(CommandError, match="batch-size"):
        _seed(tmp_path, "--batch-size", "0")
    assert all(column in SeedDemo.help for column in TRUTH_COLUMNS)


ROLES = {
    "admin": None,
    "clerk": "clerk",
    "steward": "steward",
    "integrator": "integrator",
    "auditor": "auditor",
}


def test_create_demo_users_is_idempotent_and_puts_each_user_in_its_group(db):
    first = StringIO()
    call_command("create_demo_users", stdout=first)
    call_command("create_demo_users", stdout=StringIO())

    assert User.objects.count() == 5
    for username, role in ROLES.items():
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == ([role] if role else [])
        assert user.is_staff == (username != "integrator")
        assert user.is_superuser == (username == "admin")
        assert user.check_password(f"{username}-demo-pass")
        assert f"{username}-demo-pass" in first.getvalue()


def test_create_demo_users_keeps_a_changed_password_unless_told(db):
    call_command("create_demo_users", stdout=StringIO())
    clerk = User.objects.get(username="clerk")
    clerk.set_password("a-private-passphrase-1")
    clerk.save()

    out = StringIO()
    call_command("create_demo_users", stdout=out)
    assert User.objects.get(username="clerk").check_password("a-private-passphrase-1")
    assert "existing password kept" in out.getvalue()

    call_command("create_demo_users", "--password", "one-shared-demo-secret", stdout=StringIO())
    assert all(u.check_password("one-shared-demo-secret") for u in User.objects.all())
    with pytest.raises(CommandError, match="too short"):
        call_command("create_demo_users", "--password", "short", stdout=StringIO())
