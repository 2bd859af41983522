"""The one domain signal: a patient changed.

Sent by every write service **inside** the writing transaction, after the rows are
written, so receivers (the search index) change in the same transaction and a match
right after a write sees it. Receivers must not do work outside the database here;
anything external belongs in ``transaction.on_commit``.

Arguments: ``patient`` (the Patient, children written), ``action`` (one of
``ACTIONS``), ``actor`` (a User or None for the system).
"""

from django.dispatch import Signal

ACTIONS = ("registered", "updated", "deleted", "restored", "merged", "unmerged", "linked")

patient_changed = Signal()
