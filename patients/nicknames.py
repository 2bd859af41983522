"""Given-name nicknames: the maintained ``nicknames`` list with this project's supplement.

The list (carltonnorthern/nicknames, PyPI ``nicknames``) was mined from a US genealogy
page: it knows Bill (William) and Peggy (Margaret) but not Liam, Katie for Katherine,
or the Spanish hypocorisms a registration desk in the Americas sees every day (Paco for
Francisco, Pepe for José, Lupe for Guadalupe, Chuy for Jesús). ``nicknames-supplement.csv``
adds such rows in the list's own format (``name1,has_nickname,name2``, folded to
lower-case ASCII), so they can be offered upstream; tests fail when a row is malformed
or becomes redundant because the list gained it. Only diminutives of the same name
belong there: translations (William / Guillermo) are a different claim.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from nicknames import NameTriplet, NickNamer, name_triplets

SUPPLEMENT = Path(__file__).with_name("nicknames-supplement.csv")


def supplement() -> list[NameTriplet]:
    with SUPPLEMENT.open(newline="", encoding="utf-8") as rows:
        return [NameTriplet(r["name1"], r["relationship"], r["name2"]) for r in csv.DictReader(rows)]


@cache
def nicknamer() -> NickNamer:
    """The package's list and the supplement, in one ``NickNamer``."""
    return NickNamer.from_triplets([*name_triplets(), *supplement()])
