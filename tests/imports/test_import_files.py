"""import_patients: resuming, stdin, and files it cannot read (a clear error, no traceback)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management.base import CommandError

from patients.models import Patient
from tests.imports.conftest import HEADER, csv_file, read_rejects_csv, row, run_import, write

pytestmark = pytest.mark.django_db


def checkpoints(workdir: Path) -> list[Path]:
    return sorted((workdir / "var" / "import_patients").glob("*.json"))


def test_an_interrupted_import_resumes_after_its_last_committed_batch(workdir):
    path = csv_file(
        workdir, row("A1"), row("A2", birth_date="bad"), row("A3"), row("A4"), row("A5", gender="x")
    )

    out = run_import(path, "--no-match", "--batch-size", "2", "--stop-after", "2")

    assert "stopped after line 3" in out and "--resume" in out
    assert Patient.objects.count() == 1
    (checkpoint,) = checkpoints(workdir)
    state = json.loads(checkpoint.read_text())
    assert state["last_number"] == 3 and state["counts"]["rejected"] == 1

    out = run_import(path, "--no-match", "--batch-size", "2", "--resume")

    assert "Resuming" in out and "complete" in out
    # The totals carry over from the first run; the checkpoint is gone once complete.
    assert "created 3, updated 0, unchanged 0, rejected 2" in out
    assert Patient.objects.count() == 3
    assert checkpoints(workdir) == []
    rejects = read_rejects_csv(workdir / "patients.rejects.csv")
    assert [r["_line"] for r in rejects] == ["3", "6"]  # appended, not replaced


def test_resume_refuses_a_file_that_changed(workdir):
    path = csv_file(workdir, row("A1"), row("A2"), row("A3"))
    run_import(path, "--no-match", "--batch-size", "1", "--stop-after", "1")
    with path.open("a") as f:
        f.write(row("A4") + "\n")
    with pytest.raises(CommandError, match=r"Refusing to resume: .* another size"):
        run_import(path, "--no-match", "--batch-size", "1", "--resume")
    # Without --resume the whole file is imported; the first record is found again.
    assert "created 3, updated 0, unchanged 1" in run_import(path, "--no-match")


def test_resume_refuses_other_options_and_a_missing_checkpoint(workdir):
    path = csv_file(workdir, row("A1"), row("A2"))
    with pytest.raises(CommandError, match="Nothing to resume"):
        run_import(path, "--no-match", "--resume")
    run_import(path, "--no-match", "--batch-size", "1", "--stop-after", "1")
    with pytest.raises(CommandError, match="other options"):
        run_import(path, "--no-match", "--resume", "--key-system", "urn:oid:9")


def test_stdin_is_read_with_a_format(workdir, monkeypatch):
    data = (HEADER + "\n" + row("S1") + "\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    monkeypatch.chdir(workdir)
    assert "created 1" in run_import("-", "--format", "csv", "--no-match")
    with pytest.raises(CommandError, match="say what it holds with --format"):
        run_import("-", "--no-match")
    with pytest.raises(CommandError, match="stdin cannot be resumed"):
        run_import("-", "--format", "csv", "--resume")


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("empty.csv", b"", [], "empty.csv is empty"),
        ("blank.csv", b"\n\n", [], "a CSV file starts with a header row"),
        ("latin1.csv", f"{HEADER}\n{row('L1', family='Müller')}\n".encode("latin-1"), [],
         r"Line 2 is not valid utf-8 \(byte 0xfc at column 36\).*--encoding"),
        ("patient.csv", b'{"resourceType": "Patient", "name": [{"family": "Smith"}]}\n', [],
         "No column of the header is a known field: is this a CSV file of patients?"),
        ("patients.txt", b"x", [], "Cannot tell the format of .*patients.txt from its extension"),
        ("broken.csv", f'{HEADER}\n{row("Q1")}\n"unterminated,x\n'.encode(), [], "Line 3: not valid CSV"),
        ("ok.csv", f"{HEADER}\n".encode(), ["--encoding", "klingon"], "Unknown encoding 'klingon'"),
        ("ok.csv", f"{HEADER}\n".encode(), ["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)  # fmt: skip
def test_files_that_cannot_be_read_stop_with_a_clear_error(workdir, name, content, args, message):
    path = workdir / name
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        run_import(path, "--no-match", *args)


def test_records_before_a_broken_spot_are_imported(workdir):
    path = write(workdir / "broken.csv", f'{HEADER}\n{row("Q1")}\n"unterminated,x\n')
    with pytest.raises(CommandError):
        run_import(path, "--no-match")
    assert Patient.objects.count() == 1


def test_another_encoding_is_read_with_encoding(workdir):
    path = workdir / "latin1.csv"
    path.write_bytes(f"{HEADER}\n{row('L1', family='Müller')}\n".encode("latin-1"))
    assert "created 1" in run_import(path, "--no-match", "--encoding", "latin-1")
    assert Patient.objects.get().names.get().family == "Müller"


def test_a_header_without_records_imports_nothing(workdir):
    assert "created 0, updated 0, unchanged 0, rejected 0" in run_import(csv_file(workdir), "--no-match")


def test_the_command_exits_1_with_the_message_and_no_traceback(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\n{row('L1', family='Müller')}\n".encode("latin-1"))
    manage = Path(settings.BASE_DIR) / "manage.py"
    env = {**os.environ, "MPI_ALLOW_DEV_SECRET_KEY": "true"}
    done = subprocess.run(
        [sys.executable, str(manage), "import_patients", str(path), "--no-match"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Line 2 is not valid utf-8" in done.stderr
    assert "Traceback" not in done.stderr
