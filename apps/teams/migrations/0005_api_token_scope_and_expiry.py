"""API tokens get a scope and an expiry.

Tokens that existed before get scope `admin` (a token still never does more than its user's roles
allow, so nothing they did before stops working) and expire 90 days after this migration, so every
integration is re-issued with a deliberate scope within a quarter. See README → Security.
"""
from datetime import timedelta

from django.db import migrations, models
from django.utils import timezone

EXISTING_TOKENS_LIFETIME = timedelta(days=90)


def expire_existing_tokens(apps, schema_editor):
    ApiToken = apps.get_model("teams", "ApiToken")
    ApiToken.objects.filter(expires_at__isnull=True).update(expires_at=timezone.now() + EXISTING_TOKENS_LIFETIME)


class Migration(migrations.Migration):
    dependencies = [
        ("teams", "0004_webhook_encrypt_existing_urls"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[("read", "Read: see the user's teams (GET only)"),
                         ("operate", "Operate: register, deploy, roll back, request promotions"),
                         ("approve", "Approve: decide promotion requests"),
                         ("admin", "Admin: everything the user may do")],
                default="admin", max_length=10),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(expire_existing_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(),
        ),
    ]
