"""A public UUID for each candidate (REST API), filled in for existing rows."""

import uuid

from django.db import migrations, models

# Existing rows get random ids; their history rows get the id of their candidate.
FILL = """
UPDATE matching_matchcandidate SET uuid = gen_random_uuid() WHERE uuid IS NULL;
UPDATE matching_historicalmatchcandidate h SET uuid = c.uuid
  FROM matching_matchcandidate c WHERE h.id = c.id AND h.uuid IS NULL;
UPDATE matching_historicalmatchcandidate SET uuid = gen_random_uuid() WHERE uuid IS NULL;
"""


class Migration(migrations.Migration):
    dependencies = [("matching", "0004_merge_record")]

    operations = [
        migrations.AddField(
            model_name="matchcandidate", name="uuid", field=models.UUIDField(editable=False, null=True)
        ),
        migrations.AddField(
            model_name="historicalmatchcandidate",
            name="uuid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="matchcandidate",
            name="uuid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AlterField(
            model_name="historicalmatchcandidate",
            name="uuid",
            field=models.UUIDField(db_index=True, default=uuid.uuid4, editable=False),
        ),
    ]
