"""The bulk importer's streaming side: sources, readers, rejects, checkpoints.

Readers (``csvformat`` here, the FHIR ones in ``fhir_api.importing``) turn a byte
stream into ``SourceRecord``s one at a time; ``runner.run_import`` batches them
through ``patients.bulk.write_batch``. Memory stays constant: one batch at a time.
The ``import_patients`` command (in ``fhir_api``, the only app allowed to import
every other one) wires the pieces together. See docs/import.md.
"""
