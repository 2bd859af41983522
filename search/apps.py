from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"

    def ready(self) -> None:
        from patients.signals import patient_changed, patients_bulk_created
        from search.indexing import on_patient_changed, on_patients_bulk_created

        # The one domain signal (ARCHITECTURE.md): every write service sends it inside
        # its transaction, so the index row changes atomically with the patient.
        patient_changed.connect(on_patient_changed, dispatch_uid="search.reindex_patient")
        patients_bulk_created.connect(on_patients_bulk_created, dispatch_uid="search.index_bulk_created")
