from django.db import migrations, models

# TRUNCATE fires no row trigger, so the row-level guard of 0002 never saw it; a statement-level trigger
# refuses it. Checkpoints are evidence too: the same guard on their table.
FORWARD = """
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();

CREATE OR REPLACE FUNCTION audit_checkpoint_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditcheckpoint is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoint_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_append_only();

CREATE TRIGGER audit_checkpoint_no_truncate
    BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoint_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_no_update_delete ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_checkpoint_append_only();
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [
        migrations.AddField(model_name="auditevent", name="key_id", field=models.CharField(default="", max_length=32),
                            preserve_default=False),
        migrations.AddField(model_name="auditevent", name="mac", field=models.CharField(default="", max_length=64),
                            preserve_default=False),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("size", models.BigIntegerField(unique=True)),
                ("head_hash", models.CharField(max_length=64)),
                ("head_event_id", models.BigIntegerField()),
                ("signed_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=32)),
                ("signature", models.CharField(max_length=128)),
            ],
            options={"ordering": ["-size"]},
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
