from django.db import migrations


def store_defaults(apps, schema_editor):
    from matching.defaults import DEFAULT_PARAMS

    Version = apps.get_model("matching", "MatchModelVersion")
    if not Version.objects.exists():
        Version.objects.create(
            version=1,
            params=DEFAULT_PARAMS.to_dict(),
            active=True,
            notes="The shipped default parameters (matching/defaults.py).",
        )


class Migration(migrations.Migration):
    dependencies = [("matching", "0001_queue")]
    operations = [migrations.RunPython(store_defaults, migrations.RunPython.noop)]
