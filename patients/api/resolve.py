"""Identifier resolution, the PIX cross-reference: which live patient holds an identifier.

After a merge the duplicate stays, inactive, with a ``replaced-by`` link to the
survivor; its identifiers resolve to the survivor. Chains (A merged into B, later B into
C) are followed to their end.
"""

from __future__ import annotations

from dataclasses import dataclass

from patients.codes import LinkType
from patients.data import clean_text
from patients.errors import PatientConflict
from patients.models import Identifier, Link, Patient

# Merges of merges are rare; a longer chain means corrupt links, not a real history.
MAX_CHAIN = 50


class LinkCycle(PatientConflict):
    code = "link-cycle"


@dataclass(frozen=True)
class Resolution:
    patient: Patient  # the live patient the identifier resolves to
    via: tuple[Patient, ...]  # merged-away patients followed, the identifier's holder first
    identifiers: tuple[Identifier, ...]  # live identifiers of the patient and all merged into it


def _follow_replaced_by(holder: Patient) -> tuple[Patient, tuple[Patient, ...]]:
    patient, via, seen = holder, [], {holder.pk}
    while True:
        link = (
            Link.all_objects.filter(patient=patient, type=LinkType.REPLACED_BY)
            .select_related("other")
            .order_by("-created_at", "-id")
            .first()
        )
        if link is None:
            return patient, tuple(via)
        via.append(patient)
        patient = link.other
        if patient.pk in seen or len(via) > MAX_CHAIN:
            raise LinkCycle(f"The replaced-by links from patient {holder.uuid} form a cycle.")
        seen.add(patient.pk)


def _merged_into(survivor: Patient) -> set[int]:
    """Primary keys of the survivor and of every patient merged into it, transitively."""
    found, frontier = {survivor.pk}, {survivor.pk}
    for _ in range(MAX_CHAIN):
        replaced = set(
            Link.all_objects.filter(type=LinkType.REPLACED_BY, other_id__in=frontier).values_list(
                "patient_id", flat=True
            )
        )
        frontier = replaced - found
        if not frontier:
            break
        found |= frontier
    return found


def resolve_identifier(system: str, value: str) -> Resolution | None:
    """The resolution of ``system|value``; None when no live patient holds it."""
    holding = (
        Identifier.objects.filter(system=clean_text(system), value=clean_text(value), live=True)
        .select_related("patient")
        .first()
    )
    if holding is None:
        return None
    survivor, via = _follow_replaced_by(holding.patient)
    if survivor.deleted_at is not None:
        return None
    survivor = Patient.objects.with_children().get(pk=survivor.pk)
    identifiers = (
        Identifier.all_objects.filter(patient_id__in=_merged_into(survivor), live=True)
        .select_related("patient")
        .order_by("patient_id", "id")
    )
    # The survivor's own identifiers first, then those of the records merged into it.
    ordered = sorted(identifiers, key=lambda i: (i.patient_id != survivor.pk, i.patient_id, i.id))
    return Resolution(patient=survivor, via=via, identifiers=tuple(ordered))
