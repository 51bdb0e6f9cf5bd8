from django.db import migrations

DEFAULTS = [("staging", "Pre-production checks", 10), ("production", "Serves real traffic", 20)]


def create_defaults(apps, schema_editor):
    Environment = apps.get_model("registry", "Environment")
    for name, description, rank in DEFAULTS:
        Environment.objects.get_or_create(name=name, defaults={"description": description, "rank": rank})


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
