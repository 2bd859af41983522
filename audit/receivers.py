"""Every patient write is audited in the writing transaction (same commit, same rollback).

``patient_changed`` is sent by every write service inside its transaction; a merge sends
it for both patients, so a merge is two events with one request id. Bulk imports send
``patients_bulk_created`` once per batch: one event per batch with all its patients.
"""

from __future__ import annotations

from django.dispatch import receiver

from audit.models import Action
from audit.services import record
from patients.models import Patient
from patients.signals import patient_changed, patient_purged, patients_bulk_created

ACTIONS = {
    "registered": Action.CREATE,
    "updated": Action.UPDATE,
    "deleted": Action.DELETE,
    "restored": Action.RESTORE,
    "merged": Action.MERGE,
    "unmerged": Action.UNMERGE,
    "linked": Action.LINK,
}


@receiver(patient_changed, dispatch_uid="audit.patient_changed")
def audit_patient_write(sender, *, patient, action: str, actor=None, **kwargs) -> None:
    record(
        action=ACTIONS.get(action, Action.UPDATE),
        patients=[patient.uuid],
        actor=actor,
        detail={"change": action, "version": patient.version},
    )


@receiver(patients_bulk_created, dispatch_uid="audit.patients_bulk_created")
def audit_bulk_import(sender, *, patient_ids, actor=None, **kwargs) -> None:
    uuids = Patient.all_objects.filter(pk__in=patient_ids).values_list("uuid", flat=True)
    record(action=Action.IMPORT, patients=uuids, actor=actor, detail={"created": len(patient_ids)})
    return {}


@receiver(patient_purged, dispatch_uid="audit.patient_purged")
def audit_purge(sender, *, uuid, actor=None, reason: str = "", **kwargs) -> None:
    record(action=Action.PURGE, patients=[uuid], actor=actor, detail={"reason": reason[:500]})
