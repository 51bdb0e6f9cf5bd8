"""Browser tests: creating a monitor from an uploaded reference file and editing its inferred schema."""
import pytest
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.monitoring.models import Monitor
from tests.factories import member
from tests.monitoring import factories as f


@pytest.fixture
def reference_csv(tmp_path):
    path = tmp_path / "train.csv"
    f.frame(200).to_csv(path, index=False)
    return path


def test_create_monitor_and_edit_schema(page, login, team, reference_csv):
    version = f.model_version(team, name="fraud-classifier")
    user = member(team, "ml_engineer", "dana")
    login(page, user)
    page.goto("/monitoring/")
    page.get_by_label("Model version").select_option(str(version.pk))
    page.get_by_label("Name").fill("fraud-watch")
    page.get_by_label("Reference data (CSV or Parquet)").set_input_files(str(reference_csv))
    page.get_by_label("Prediction column").fill("prediction")
    page.get_by_role("button", name="Create monitor").click()
    expect(page.get_by_role("status")).to_contain_text("Monitor fraud-watch created with 200 reference rows")
    expect(page.locator("#schema-form tr[data-column='country'] select").first).to_have_value("categorical")
    expect(page.locator("#schema-form tr[data-column='prediction'] select").nth(1)).to_have_value("prediction")

    page.get_by_label("role of prediction").select_option("target")
    page.get_by_label("drop channel").check()
    page.get_by_role("button", name="Save schema").click()
    expect(page.get_by_role("status")).to_contain_text("Schema saved")
    monitor = Monitor.objects.get(name="fraud-watch")
    schema = {c["name"]: c["role"] for c in monitor.reference.schema}
    assert "channel" not in schema and schema["prediction"] == "target"
    assert AuditEvent.objects.filter(action="monitoring.reference.schema_update").exists()


def test_bad_reference_file_is_explained(page, login, team, tmp_path):
    f.model_version(team, name="fraud-classifier")
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"\\x00\\x01\\x02")
    login(page, member(team, "ml_engineer", "dana"))
    page.goto("/monitoring/")
    page.get_by_label("Name").fill("x")
    page.get_by_label("Reference data (CSV or Parquet)").set_input_files(str(bad))
    page.get_by_role("button", name="Create monitor").click()
    expect(page.get_by_role("status")).to_contain_text("reference data")
    assert not Monitor.objects.exists()
