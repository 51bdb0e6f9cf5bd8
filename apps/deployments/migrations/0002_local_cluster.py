from django.db import migrations


def create_local_cluster(apps, schema_editor):
    # The embedded target, so the product deploys something with no cluster at all.
    Cluster = apps.get_model("deployments", "Cluster")
    Cluster.objects.get_or_create(name="local", defaults={"kind": "local",
                                                          "description": "Model servers as local processes"})


class Migration(migrations.Migration):
    dependencies = [("deployments", "0001_initial")]
    operations = [migrations.RunPython(create_local_cluster, migrations.RunPython.noop)]
