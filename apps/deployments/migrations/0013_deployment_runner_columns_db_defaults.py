"""Database defaults for the columns 0012 added, so web pods of the previous release (which know nothing of
them) can still create deployments during a rolling upgrade (README → Upgrading: a release's migrations must
work with the previous release's code). Django drops the defaults it used to fill existing rows; these stay.
The model's own defaults are unchanged, so Django's state is too."""
from django.db import migrations

COLUMNS = {"desired_generation": "1", "observed_generation": "0", "attempts": "0", "last_error": "''",
           "resume_status": "''"}


class Migration(migrations.Migration):

    dependencies = [
        ("deployments", "0012_deployment_rollout_on_the_runner"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE deployments_deployment "
            + ", ".join(f"ALTER COLUMN {column} SET DEFAULT {value}" for column, value in COLUMNS.items()),
            reverse_sql="ALTER TABLE deployments_deployment "
            + ", ".join(f"ALTER COLUMN {column} DROP DEFAULT" for column in COLUMNS)),
    ]
