import secrets

from django.db import migrations, models

from apps.core import crypto
from apps.core.masking import mask_url


def encrypt_urls(apps, schema_editor):
    """Encrypt each stored plaintext URL and give each endpoint its own signing secret (team admins read it
    by rotating the secret, which shows the new one once)."""
    WebhookEndpoint = apps.get_model("teams", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.all():
        endpoint.url_encrypted = crypto.encrypt(endpoint.url)
        endpoint.url_masked = mask_url(endpoint.url)
        endpoint.secret_encrypted = crypto.encrypt(secrets.token_urlsafe(32))
        endpoint.save(update_fields=["url_encrypted", "url_masked", "secret_encrypted"])


def decrypt_urls(apps, schema_editor):
    WebhookEndpoint = apps.get_model("teams", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.all():
        endpoint.url = crypto.decrypt(endpoint.url_encrypted)
        endpoint.save(update_fields=["url"])


class Migration(migrations.Migration):
    dependencies = [
        ("teams", "0003_webhook_secrets_and_delivery_log"),
    ]

    operations = [
        migrations.RunPython(encrypt_urls, decrypt_urls),
        migrations.RemoveField(model_name="webhookendpoint", name="url"),
        migrations.AlterField(model_name="webhookendpoint", name="url_encrypted", field=models.BinaryField()),
        migrations.AlterField(model_name="webhookendpoint", name="secret_encrypted", field=models.BinaryField()),
    ]
