"""FHIR input for the bulk importer: NDJSON (Bulk Data export: one resource per line)
and a Bundle (its ``entry[].resource``), both through ``mapping.patient_from_fhir``.

A Bundle is parsed incrementally (ijson), one entry at a time, so a large one needs no
more memory than NDJSON. JSON is UTF-8 (RFC 8259), so neither takes ``--encoding``.
Records are numbered by line (NDJSON) or by 1-based position in ``Bundle.entry``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import ijson

from fhir_api.errors import FhirError
from fhir_api.mapping import fhir_expression, patient_from_fhir
from patients.data import PatientData
from patients.importing.source import ImportFileError, Source, SourceRecord

_DATA_FIELDS = frozenset(PatientData.__dataclass_fields__)


class _FhirLabels(Mapping):
    """Data paths of the writer's rejects as FHIRPath (``names[0]`` -> ``Patient.name[0]``);
    the mapper's own errors already are FHIRPath and are left as they are."""

    def __getitem__(self, path: str) -> str:
        if path not in self:
            raise KeyError(path)
        return fhir_expression(path)

    def __contains__(self, path) -> bool:
        return isinstance(path, str) and path.split(".")[0].split("[")[0] in _DATA_FIELDS

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0


LABELS = _FhirLabels()


def fhir_errors(exc: FhirError) -> dict[str, list[str]]:
    """FHIRPath -> diagnostics of every issue of a mapper error."""
    issues = exc.issues or [{"diagnostics": exc.diagnostics, "expression": exc.expression}]
    errors: dict[str, list[str]] = {}
    for item in issues:
        where = (item.get("expression") or ["Patient"])[0]
        errors.setdefault(where, []).append(item["diagnostics"])
    return errors


def resource_record(number: int, resource) -> SourceRecord:
    if isinstance(resource, dict) and resource.get("resourceType") not in (None, "Patient"):
        message = f"A {resource['resourceType']} resource, not a Patient: not imported."
        return SourceRecord(number, errors={"resourceType": [message]}, raw=resource, labels=LABELS)
    try:
        data = patient_from_fhir(resource)
    except FhirError as exc:
        return SourceRecord(number, errors=fhir_errors(exc), raw=resource, labels=LABELS)
    return SourceRecord(number, data=data, raw=resource, labels=LABELS)


class NdjsonReader:
    rejects_format = "ndjson"
    header: tuple[str, ...] = ()

    def __init__(self, source: Source) -> None:
        self.source = source

    def records(self) -> Iterator[SourceRecord]:
        seen = False
        for number, text in self.source.lines("utf-8"):
            if not text.strip():
                continue
            try:
                resource = json.loads(text)
            except ValueError as exc:
                if not seen:  # the first record decides whether this is NDJSON at all
                    raise ImportFileError(
                        f"Line {number} is not JSON ({exc}): is this NDJSON, one resource per line? "
                        "(--format csv or bundle for other files)"
                    ) from exc
                error = {"": [f"Not JSON: {exc}."]}
                yield SourceRecord(number, errors=error, raw=text.rstrip("\r\n"), labels=LABELS)
                continue
            if not seen and isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
                raise ImportFileError(f"Line {number} is a whole Bundle: import it with --format bundle.")
            seen = True
            yield resource_record(number, resource)
        if not seen:
            raise ImportFileError(f"{self.source.name} holds no resource.")


class _Counting:
    """A binary stream that counts the bytes read through it (for progress)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.stream.read(size)
        self.source.consumed += len(chunk)
        return chunk


class BundleReader:
    rejects_format = "ndjson"
    header: tuple[str, ...] = ()

    def __init__(self, source: Source) -> None:
        self.source = source

    def records(self) -> Iterator[SourceRecord]:
        builder = None
        number = 0
        kind = None
        try:
            for prefix, event, value in ijson.parse(_Counting(self.source), use_float=True):
                if prefix == "" and event not in ("start_map", "map_key", "end_map"):
                    raise ImportFileError(f"{self.source.name} is not a JSON object (a FHIR Bundle).")
                if prefix == "resourceType":
                    kind = value
                    if value != "Bundle":
                        hint = " (NDJSON: --format ndjson)" if value == "Patient" else ""
                        raise ImportFileError(f"{self.source.name} is a {value}, not a Bundle{hint}.")
                elif prefix == "entry.item" and event == "start_map":
                    builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                elif builder is not None:
                    builder.event(event, value)
                    if prefix == "entry.item" and event == "end_map":
                        number += 1
                        entry, builder = builder.value, None
                        resource = entry.get("resource")
                        if not isinstance(resource, dict):
                            error = {"Bundle.entry.resource": ["The entry has no resource."]}
                            yield SourceRecord(number, errors=error, raw=entry, labels=LABELS)
                        else:
                            yield resource_record(number, resource)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise ImportFileError(
                f"{self.source.name} is not valid JSON after {self.source.consumed:,} bytes "
                f"(entry {number + 1}): {exc}. The entries before it are imported."
            ) from exc
        if kind is None:
            raise ImportFileError(f"{self.source.name} has no resourceType: not a FHIR Bundle.")
