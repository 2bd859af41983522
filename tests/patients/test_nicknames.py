"""The nickname list: the maintained package plus our supplement (patients/nicknames.py)."""

from __future__ import annotations

import re

from nicknames import NickNamer

from patients.nicknames import SUPPLEMENT, nicknamer, supplement


def test_the_supplement_is_in_the_packages_format_folded_and_without_repeats():
    assert SUPPLEMENT.read_text(encoding="utf-8").splitlines()[0] == "name1,relationship,name2"
    rows = supplement()
    assert len(rows) > 50
    assert len(set(rows)) == len(rows), "a row appears twice"
    for canonical, relationship, nickname in rows:
        assert relationship == "has_nickname", (canonical, relationship, nickname)
        # Folded as the matcher folds given names: lower-case ASCII letters only.
        assert re.fullmatch("[a-z]+", canonical) and re.fullmatch("[a-z]+", nickname), (canonical, nickname)
        assert canonical != nickname


def test_every_supplement_row_adds_what_the_package_lacks():
    # When upstream gains one of our rows, this names it: delete it from the supplement.
    package = NickNamer()
    redundant = [(c, n) for c, _, n in supplement() if n in package.nicknames_of(c)]
    assert redundant == []


def test_the_merged_list_knows_both_sources_both_ways():
    nn = nicknamer()
    assert {"bill", "liam"} <= nn.nicknames_of("William")  # package, supplement
    assert nn.canonicals_of("liam") == {"william"}
    assert "francisco" in nn.canonicals_of("Paco")
    assert nn.canonicals_of("sasha") >= {"alexander", "alexandra", "aleksandr"}
    assert nn.nicknames_of("not a name") == set()
