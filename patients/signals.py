"""The one domain signal: a patient changed.

Sent by every write service **inside** the writing transaction, after the rows are
written, so receivers (the search index) change in the same transaction and a match
right after a write sees it. Receivers must not do work outside the database here;
anything external belongs in ``transaction.on_commit``.

Arguments: ``patient`` (the Patient, children written), ``action`` (one of
``ACTIONS``), ``actor`` (a User or None for the system). A registration and an update
also send ``data``: the patient as it reads back (a registration: ``patients.data.
in_stored_order`` of the cleaned data its rows were written from; an update: read once
after its writes), so that each receiver need not read it back. Such a patient is live
and not merged away (an update refuses both).
"""

from django.dispatch import Signal

ACTIONS = ("registered", "updated", "deleted", "restored", "merged", "unmerged", "linked")

patient_changed = Signal()

# Sent by ``purge_patient`` inside its transaction, after the rows are gone (the search
# index forgot the patient at the soft delete). Arguments: ``uuid`` (the patient's
# public id), ``actor``, ``reason``. The audit trail records it.
patient_purged = Signal()

# Sent by ``patients.bulk`` once per batch of *created* patients, inside the writing
# transaction, after their rows are written (a bulk update goes through
# ``update_patient`` and sends ``patient_changed`` per patient). Receivers index and
# match the batch in bulk. Arguments: ``patient_ids`` (list of Patient primary keys),
# ``data`` (patient id -> the cleaned ``PatientData`` just written, children in the
# order of their ids), ``actor`` (a User or None), ``match`` (False for an initial
# load: do not match).
# A receiver may return a dict of counters (e.g. ``{"duplicates_opened": 3}``) that
# the importer adds to its summary.
patients_bulk_created = Signal()
