from django.db import migrations, models


class Migration(migrations.Migration):
    """Webhook URLs and signing secrets move to encrypted columns (filled by 0004); deliveries become a log
    of attempts with outcome, latency and errors."""

    dependencies = [
        ("teams", "0002_api_token_verbose_name"),
    ]

    operations = [
        migrations.RenameField(model_name="webhookdelivery", old_name="delivered_at", new_name="attempted_at"),
        migrations.AlterModelOptions(
            name="webhookdelivery",
            options={"ordering": ["-attempted_at", "-pk"], "verbose_name_plural": "webhook deliveries"},
        ),
        migrations.AddField(model_name="webhookdelivery", name="delivery_key",
                            field=models.CharField(blank=True, db_index=True, max_length=255)),
        migrations.AddField(model_name="webhookdelivery", name="attempt",
                            field=models.PositiveSmallIntegerField(default=1)),
        migrations.AddField(
            model_name="webhookdelivery", name="outcome",
            field=models.CharField(choices=[("delivered", "Delivered"), ("rejected", "Rejected by the receiver"),
                                            ("failed", "Failed, retried"), ("refused", "Refused by the SSRF guard")],
                                   default="delivered", max_length=20),
        ),
        migrations.AddField(model_name="webhookdelivery", name="latency_ms",
                            field=models.PositiveIntegerField(blank=True, null=True)),
        migrations.AddField(model_name="webhookdelivery", name="error",
                            field=models.CharField(blank=True, max_length=500)),
        migrations.AlterField(model_name="webhookdelivery", name="status_code",
                              field=models.PositiveIntegerField(blank=True, null=True)),
        # Nullable so that migrating back re-adds the column before 0004 refills it.
        migrations.AlterField(model_name="webhookendpoint", name="url", field=models.URLField(max_length=500, null=True)),
        migrations.AddField(model_name="webhookendpoint", name="url_encrypted", field=models.BinaryField(null=True)),
        migrations.AddField(model_name="webhookendpoint", name="url_masked",
                            field=models.CharField(default="", max_length=300), preserve_default=False),
        migrations.AddField(model_name="webhookendpoint", name="secret_encrypted", field=models.BinaryField(null=True)),
        migrations.AddField(model_name="webhookendpoint", name="secret_rotated_at",
                            field=models.DateTimeField(blank=True, null=True)),
    ]
