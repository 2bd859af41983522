"""Helpers for the bulk importer's tests: write a file, run the command, read the rejects."""

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

MRN = "urn:oid:1.2.36.146.595.217.0.1"
SSN = "http://hl7.org/fhir/sid/us-ssn"
HEADER = "identifier_system,identifier_value,family,given,birth_date,gender,phone,postal_code,city"


@pytest.fixture
def workdir(tmp_path: Path, settings) -> Path:
    settings.BASE_DIR = tmp_path  # default checkpoints go under <BASE_DIR>/var
    return tmp_path


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def csv_file(folder: Path, *rows: str, name: str = "patients.csv", header: str = HEADER) -> Path:
    return write(folder / name, "\n".join([header, *rows]) + "\n")


def run_import(path, *args, **kwargs) -> str:
    out = io.StringIO()
    call_command("import_patients", str(path), *args, stdout=out, **kwargs)
    return out.getvalue()


def read_rejects_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_ndjson(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def row(mrn: str, family: str = "Smith", given: str = "John", birth_date: str = "1980-03-04",
        gender: str = "male", phone: str = "+1 617 555 0100", postal_code: str = "02134",
        city: str = "Boston") -> str:  # fmt: skip
    return ",".join([MRN, mrn, family, given, birth_date, gender, phone, postal_code, city])
