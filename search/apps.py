from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"

    def ready(self) -> None:
        from patients.signals import patient_changed
        from search.indexing import on_patient_changed

        # The one domain signal (ARCHITECTURE.md): every write service sends it inside
        # its transaction, so the index row changes atomically with the patient.
        patient_changed.connect(on_patient_changed, dispatch_uid="search.reindex_patient")
