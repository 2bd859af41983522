from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MatchingConfig(AppConfig):
    name = "matching"

    def ready(self) -> None:
        from matching.api.provider import registration_candidates
        from matching.bulk import on_patients_bulk_created
        from matching.services import on_patient_changed
        from patients.api.candidates import set_candidate_provider
        from patients.apps import sync_roles
        from patients.signals import patient_changed, patients_bulk_created

        # Connected after the search app's receiver (INSTALLED_APPS order), so the
        # index already holds this write when the patient is matched.
        patient_changed.connect(on_patient_changed, dispatch_uid="matching.on_patient_changed")
        patients_bulk_created.connect(on_patients_bulk_created, dispatch_uid="matching.match_bulk_created")
        # Registrations through the REST API answer with the candidates they opened.
        set_candidate_provider(registration_candidates)
        # The steward role holds matching permissions (patients/roles.py), which exist
        # only once this app's post_migrate has created them: patients' own hook runs
        # too early on a fresh database, so sync the groups again after ours.
        post_migrate.connect(sync_roles, sender=self, dispatch_uid="matching.sync_roles")
