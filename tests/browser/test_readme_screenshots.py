"""The README's screenshots (dashboard, drift, costs) of the demo seed (`manage.py seed_demo`: what `make run`
shows), 1440 px wide.

A screenshot is never byte-identical twice (dates and times move) and the seed takes minutes, so taking them is
opt-in: `UPDATE_SCREENSHOTS=1 make test PYTEST_ARGS=tests/browser/test_readme_screenshots.py` seeds a test database,
signs in as the demo admin and writes `docs/screenshot-*.png` (each page checked first: heading shown, chart drawn).
Every other run only checks that the committed files are there, 1440 px wide and referenced from the README, so the
tree stays clean; the pages themselves are covered by the other browser tests.
"""
import io
import os
import struct
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from apps.demo import seed as demo
from apps.monitoring.demo import MONITOR_NAME
from apps.monitoring.models import Monitor

DOCS = Path(__file__).resolve().parents[2] / "docs"
VIEWPORT = {"width": 1440, "height": 1000}
UPDATE = os.environ.get("UPDATE_SCREENSHOTS") == "1"
NAMES = ["dashboard", "drift", "costs"]
MAX_BYTES = 300_000


@pytest.fixture
def demo_seed(transactional_db, mlflow_uri, settings, tmp_path):
    from mlflow import MlflowClient

    settings.DEPLOYMENTS_LOCAL_DIR = tmp_path / "local"
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    if client.search_registered_models(filter_string=f"name='{demo.MODEL_NAME}'"):  # the server lives per session
        client.delete_registered_model(demo.MODEL_NAME)
    call_command("seed_demo", stdout=io.StringIO())


def png_width(path: Path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">I", header[16:20])[0]


def test_readme_screenshots_are_committed_and_referenced():
    readme = (DOCS.parent / "README.md").read_text()
    for name in NAMES:
        path = DOCS / f"screenshot-{name}.png"
        assert path.exists(), f"{path} missing: run this file with UPDATE_SCREENSHOTS=1"
        assert png_width(path) == VIEWPORT["width"] and path.stat().st_size < MAX_BYTES
        assert f"docs/screenshot-{name}.png" in readme


@pytest.mark.mlflow
@pytest.mark.skipif(not UPDATE, reason="takes the README screenshots only with UPDATE_SCREENSHOTS=1")
def test_take_readme_screenshots_of_the_demo(page, demo_seed):
    page.set_viewport_size(VIEWPORT)
    page.goto("/login/")
    page.get_by_label("Username").fill(demo.ADMIN_USERNAME)
    page.get_by_label("Password").fill(demo.DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    monitor = Monitor.objects.get(name=MONITOR_NAME)
    # The seed's 30 days of costs: the month that holds their middle, so early in a month the page isn't empty.
    month = f"{timezone.now() - timedelta(days=15):%Y-%m}"
    shots = [
        ("dashboard", "/", "Dashboard", "main"),
        ("drift", f"/monitoring/monitors/{monitor.pk}/", MONITOR_NAME, ".js-plotly-plot .main-svg"),
        ("costs", f"/costs/?month={month}", "Costs", "#cost-chart .main-svg"),
    ]
    for name, path, heading, drawn in shots:
        page.goto(path)
        expect(page.get_by_role("heading", level=1).first).to_contain_text(heading)
        expect(page.locator(drawn).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(DOCS / f"screenshot-{name}.png"))
    assert [name for name, *_ in shots] == NAMES
