"""The MPI operations of the FHIR API: $match, $merge, $unmerge and $ihe-pix on Patient.

Pure parts (reading and writing ``Parameters``, the OperationDefinitions, the result
Bundle of ``$match``, the survivorship choices read from a ``result-patient``) are
database-free; the views in ``fhir_api/views/operations.py`` call the services of
``matching`` and ``patients`` through the helpers here. See docs/fhir.md, "Operations".
"""
