from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0009_promotion_needs_attention"),
    ]

    operations = [
        migrations.AddField(
            model_name="registeredmodel",
            name="mlflow_read_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="since_watermark",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="watermark",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
