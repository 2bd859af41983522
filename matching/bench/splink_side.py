"""Splink 4 (DuckDB, in memory) on the same records and fields, EM-trained, as the
reference to beat. Bench-only: splink and pandas come from requirements-bench.txt.

Set up as Splink's own tutorials do for person data: name comparisons with
Jaro-Winkler levels and term frequencies, a date-of-birth comparison, Levenshtein on
postcode and national id, u by random sampling, m by two EM sessions (one blocked on
names, one on the birth date, so that every comparison is trained in one of them).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from matching.bench.datasets import Dataset, flat_fields
from matching.bench.metrics import Pair, pair

COLUMNS = ("given_name", "surname", "dob", "gender", "address", "city", "postcode", "ssn", "phone", "email")


@dataclass
class SplinkPredictions:
    probabilities: dict[Pair, float] = field(default_factory=dict)  # every blocked pair
    seconds: float = 0.0
    columns: tuple[str, ...] = ()
    probability_two_random_records_match: float = 0.0


def _comparisons(present: set[str]) -> list:
    import splink.comparison_library as cl

    options = {
        "given_name": lambda: cl.NameComparison("given_name"),
        "surname": lambda: cl.NameComparison("surname"),
        "dob": lambda: cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y-%m-%d"),
        "gender": lambda: cl.ExactMatch("gender"),
        "address": lambda: cl.JaroWinklerAtThresholds("address", [0.9, 0.8]),
        "city": lambda: cl.JaroWinklerAtThresholds("city", [0.9]),
        "postcode": lambda: cl.LevenshteinAtThresholds("postcode", [1]),
        "ssn": lambda: cl.DamerauLevenshteinAtThresholds("ssn", [1]),
        "phone": lambda: cl.LevenshteinAtThresholds("phone", [1]),
        "email": lambda: cl.EmailComparison("email"),
    }
    return [make() for column, make in options.items() if column in present]


def _blocking_rules(present: set[str]) -> list:
    """Like the registry's blocks: identifier, phone, email, family name + birth year,
    full name, name + birth date, birth date + initial, swapped names, name + postcode."""
    from splink import block_on

    rules = [
        (("ssn",), block_on("ssn")),
        (("phone",), block_on("phone")),
        (("email",), block_on("email")),
        (("surname", "dob"), block_on("surname", "substr(dob, 1, 4)")),
        (("surname", "given_name"), block_on("surname", "given_name")),
        (("given_name", "dob"), block_on("given_name", "dob")),
        (("surname", "given_name", "dob"), block_on("dob", "substr(surname, 1, 1)")),
        (("surname", "given_name", "dob"), block_on("dob", "substr(given_name, 1, 1)")),
        (("surname", "given_name", "postcode"), block_on("postcode", "substr(given_name, 1, 2)")),
        (("surname", "given_name"), "l.given_name = r.surname AND l.surname = r.given_name"),
    ]
    return [rule for needs, rule in rules if set(needs) <= present]


def frames(dataset: Dataset):
    """One pandas frame per source (one for deduplication, two for linkage)."""
    import pandas as pd

    by_source: dict[str, list[dict]] = {}
    for record in dataset.records:
        row = {"unique_id": record.key, **flat_fields(record.data)}
        by_source.setdefault(record.source, []).append(row)
    out = [pd.DataFrame(rows, columns=["unique_id", *COLUMNS]) for _, rows in sorted(by_source.items())]
    present = {c for c in COLUMNS if any(frame[c].notna().mean() > 0.01 for frame in out)}
    return out, present


def run_splink(dataset: Dataset, *, seed: int = 1) -> SplinkPredictions:
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    logging.getLogger("splink").setLevel(logging.WARNING)
    started = time.perf_counter()
    tables, present = frames(dataset)
    tables = [t[["unique_id", *[c for c in COLUMNS if c in present]]] for t in tables]
    settings = SettingsCreator(
        link_type="link_only" if dataset.link_type == "link" else "dedupe_only",
        comparisons=_comparisons(present),
        blocking_rules_to_generate_predictions=_blocking_rules(present),
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(
        tables if len(tables) > 1 else tables[0], settings, DuckDBAPI(), set_up_basic_logging=False
    )
    deterministic = [block_on("given_name", "surname", "dob")]
    if "ssn" in present:
        deterministic.append(block_on("ssn"))
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("given_name", "surname"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    frame = linker.inference.predict().as_pandas_dataframe()
    out = SplinkPredictions(columns=tuple(sorted(present)))
    for a, b, p in zip(frame["unique_id_l"], frame["unique_id_r"], frame["match_probability"], strict=True):
        key = pair(a, b)
        if p > out.probabilities.get(key, -1.0):
            out.probabilities[key] = float(p)
    out.probability_two_random_records_match = float(
        linker._settings_obj._probability_two_random_records_match  # for the report only
    )
    out.seconds = time.perf_counter() - started
    return out
