from django.db import migrations, models


class Migration(migrations.Migration):
    """PredictionFile.summarized: files written before this were merged into their summaries at ingest (True);
    new files start False until the background merge (services/partition_summaries.files_summarize)."""

    dependencies = [("monitoring", "0009_prediction_day_counts")]

    operations = [
        migrations.AddField(model_name="predictionfile", name="summarized", field=models.BooleanField(default=True)),
        migrations.AlterField(model_name="predictionfile", name="summarized", field=models.BooleanField(default=False)),
        migrations.AddIndex(
            model_name="predictionfile",
            index=models.Index(condition=models.Q(summarized=False), fields=["model_version"],
                               name="prediction_file_unsummarized"),
        ),
    ]
