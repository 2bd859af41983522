"""Pure normalisation and blocking keys: no database."""

from datetime import date

import jellyfish
import pytest

from patients.data import AddressData, ContactData, IdentifierData, NameData, PatientData
from search import keys
from search.indexing import index_values
from search.normalize import (
    birth_date_variants,
    family_tokens,
    fold,
    name_words,
    phone_suffix,
    phonetic_codes,
    postcode_key,
)


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Müller", "muller"),
        ("GARCÍA MÁRQUEZ", "garcia marquez"),
        ("Straße", "strasse"),
        ("Østergaard", "ostergaard"),
        ("Łukasik", "lukasik"),
        ("Dvořák", "dvorak"),
        ("", ""),
        (None, ""),
    ],
)
def test_fold_strips_accents_and_case(raw, folded):
    assert fold(raw) == folded


def test_name_words_join_apostrophes_and_split_hyphens():
    assert name_words("O'Brien-Núñez") == ["obrien", "nunez"]
    assert name_words("D\u2019Angelo  Jr.") == ["dangelo", "jr"]
    assert name_words("Иванов") == ["иванов"]


def test_family_tokens_keep_parts_and_the_joined_name_but_not_particles():
    assert family_tokens("Smith-Jones") == ["smith", "jones", "smithjones"]
    assert family_tokens("van der Berg") == ["berg", "vanderberg"]
    assert family_tokens("De") == ["de"]


def test_phonetic_codes_need_accents_stripped_first():
    # The reason the index folds before encoding: jellyfish sees "ü" as a letter.
    assert jellyfish.nysiis("Müller") != jellyfish.nysiis("Muller")
    assert (
        phonetic_codes(fold("Müller")) == phonetic_codes("muller") == {"m": "MLR", "n": "MALAR", "s": "M460"}
    )
    assert phonetic_codes("иванов") == {"w": "иванов"}


def test_phone_suffix_and_postcode_forms():
    assert phone_suffix("+1 617 555 0100") == phone_suffix("555-0100") == "5550100"
    assert phone_suffix("12345") == ""
    assert postcode_key(" sw1a 1aa ") == "SW1A1AA"


def test_birth_date_variants_cover_common_slips():
    variants = birth_date_variants(date(1980, 3, 4), today=date(2025, 1, 1))
    assert variants[0] == date(1980, 3, 4)
    for slip in (date(1980, 4, 3), date(1908, 3, 4), date(1981, 3, 4), date(1990, 3, 4), date(1980, 3, 5)):
        assert slip in variants
    assert date(1980, 3, 12) not in variants  # an arbitrary other day is not a slip
    assert all(v <= date(2025, 1, 1) for v in birth_date_variants(date(2024, 12, 31), today=date(2025, 1, 1)))


def test_record_keys_are_symmetric_where_blocks_need_it():
    smith = keys.record_keys([(["smith"], ["john"])], date(1980, 3, 4), ["02134"])
    assert {"fy:m:SM0:1980", "fy:s:S530:1980", "nm:SM0:JN"} <= set(smith)
    # The initial of either name, so swapped names still share a date key.
    assert {"di:1980-03-04:j", "di:1980-03-04:s", "fp:SM0:02134", "gp:JN:02134"} <= set(smith)
    # Prefixes for partly typed names, with the birth year or in pairs.
    assert {"py:smi:1980", "py:joh:1980", "pp:smi:joh"} <= set(smith)
    assert keys.record_keys([(["smith"], ["john"])], None, []) == ["nm:SM0:JN", "pp:smi:joh"]


def test_index_values_is_pure_and_normalises_unclean_input():
    data = PatientData(
        names=(NameData(family="  Núñez ", given=("José",)), NameData(text="Pepe Nunez")),
        identifiers=(IdentifierData(system="urn:oid:1.2", value="AB-12"),),
        addresses=(AddressData(city="Málaga", postal_code="29001 "),),
        contacts=(
            ContactData(system="phone", value="(617) 555-0100"),
            ContactData(system="email", value="X@Y.ES"),
        ),
        birth_date=date(1970, 1, 2),
    )
    row = index_values(data)
    assert row == index_values(data)
    assert row["display_name"] == "José Núñez"
    assert row["name_text"] == "jose nunez pepe"
    assert row["phones"] == ["+16175550100"] and row["emails"] == ["x@y.es"]
    assert row["identifier_values"] == ["ab-12"] and row["postcodes"] == ["29001"]
    assert row["cities"] == ["malaga"]
