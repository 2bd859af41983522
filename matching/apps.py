from django.apps import AppConfig


class MatchingConfig(AppConfig):
    name = "matching"

    def ready(self) -> None:
        from matching.services import on_patient_changed
        from patients.signals import patient_changed

        # Connected after the search app's receiver (INSTALLED_APPS order), so the
        # index already holds this write when the patient is matched.
        patient_changed.connect(on_patient_changed, dispatch_uid="matching.on_patient_changed")
