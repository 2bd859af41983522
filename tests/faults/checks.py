"""The end-of-run checks every fault test makes: the operator's commands, on the test database."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


def _run(command: str) -> str:
    """The command's output; a failure (exit code 1 from the shell) fails the test with it."""
    out = StringIO()
    try:
        call_command(command, stdout=out)
    except CommandError as exc:
        raise AssertionError(f"{command} failed (exit {exc.returncode}): {exc}\n{out.getvalue()}") from exc
    return out.getvalue()


def assert_no_integrity_violations() -> None:
    assert "No violations." in _run("check_integrity")


def assert_audit_chain_intact() -> int:
    """The chain verifies end to end; returns how many events it holds."""
    output = _run("verify_audit")
    assert "Audit chain intact" in output
    return int(output.split("intact: ")[1].split()[0])
