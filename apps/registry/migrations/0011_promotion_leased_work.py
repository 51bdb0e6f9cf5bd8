from django.db import migrations, models


class Migration(migrations.Migration):
    """Promotion publishing moves onto the runner: publish_error and publish_attempts become the runner's
    last_error and attempts (renamed, values kept), with a lease and a due time next to them."""

    dependencies = [
        ("registry", "0010_sync_watermark"),
    ]

    operations = [
        migrations.RenameField(model_name="promotionrequest", old_name="publish_error", new_name="last_error"),
        migrations.RenameField(model_name="promotionrequest", old_name="publish_attempts", new_name="attempts"),
        migrations.AlterField(
            model_name="promotionrequest",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="Attempts in the current round (Retry starts anew)"),
        ),
        migrations.AddField(
            model_name="promotionrequest",
            name="lease_owner",
            field=models.CharField(blank=True, default="", help_text="The runner working on this row now (empty: nobody)",
                                   max_length=100),
        ),
        migrations.AddField(
            model_name="promotionrequest",
            name="lease_until",
            field=models.DateTimeField(blank=True, null=True,
                                       help_text="Past this time a silent runner is presumed dead; the row is reclaimed"),
        ),
        migrations.AddField(
            model_name="promotionrequest",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True, help_text="Not due before (backoff); empty: due now"),
        ),
    ]
