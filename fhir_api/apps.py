from django.apps import AppConfig


class FhirApiConfig(AppConfig):
    name = "fhir_api"
