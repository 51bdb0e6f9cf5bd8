"""Every page a team admin reaches, with data like the demo's, checked in one browser context: axe-core finds no
serious or critical WCAG 2.1 A/AA violation, and at 1440 and 390 px wide nothing scrolls sideways (a wide table
scrolls inside its own container, and the charts are drawn), and every chart has titled axes and a "Show data"
table."""
import io
import time
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from playwright.sync_api import expect

from apps.registry.models import PromotionRequest
from tests.deployments.factories import deployment_in, environment, local_cluster
from tests.factories import member
from tests.monitoring import factories as monitoring

WIDTHS = (1440, 390)
BLOCKING_IMPACTS = {"serious", "critical"}
# The outermost elements that end past the right edge: what to fix when a page scrolls sideways.
WIDEST = """[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > innerWidth + 1
  && !(e.parentElement && e.parentElement.getBoundingClientRect().right > innerWidth + 1))
  .slice(0, 3).map(e => e.outerHTML.slice(0, 100))"""
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
# Every Plotly chart's text alternative (frontend/static/js/charts.js): titled axes and a "Show data" table.
CHARTS_WITHOUT_TEXT = """[...document.querySelectorAll(".js-plotly-plot")].flatMap(c => [
  document.querySelector(`details.chart-data[data-chart="${c.id}"] tbody tr`) ? null : `${c.id}: no show-data rows`,
  c.querySelector(".g-xtitle text")?.textContent ? null : `${c.id}: no x axis title`,
  c.querySelector(".g-ytitle text")?.textContent ? null : `${c.id}: no y axis title`].filter(Boolean))"""


def _painted_share(png: bytes) -> float:
    """The share of a screenshot's pixels that are not the background (white)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    histogram = image.histogram()
    return 1 - sum(histogram[250:]) / (image.width * image.height)


@pytest.fixture
def pages(team, transactional_db):
    """The team's pages and a few of each kind of object on them; returns (team admin, paths, healthy deployment's
    page)."""
    admin = member(team, "team_admin", "alice-a11y")
    staging = environment("staging")
    deployment = deployment_in(team, cluster=local_cluster(), name="fraud-api")
    monitor = monitoring.monitor(team)
    monitoring.run(monitor)
    alert = monitoring.alert(monitor)
    version = monitor.model_version
    member(team, "approver", "bob-a11y")
    waiting = PromotionRequest.objects.create(  # the inbox with progress and who still approves
        team=team, version=version, environment=staging, requested_by=member(team, "ml_engineer", "dave-a11y"),
        policy={"approvals_required": 2, "approver_roles": ["approver", "team_admin"]},
        gate_results=[{"kind": "metric", "metric": "accuracy", "value": 0.9777777777777777, "op": ">=",
                       "threshold": 0.9, "passed": True, "message": "accuracy = 0.978 passes >= 0.9."}],
        expires_at=timezone.now() + timedelta(days=1))
    return admin, [
        "/", "/registry/", f"/registry/models/{version.model_id}/", f"/registry/versions/{version.pk}/",
        "/registry/inbox/", f"/registry/requests/{waiting.pk}/", "/registry/policies/",
        "/deployments/", "/deployments/new/", f"/deployments/{deployment.pk}/",
        "/monitoring/", f"/monitoring/monitors/{monitor.pk}/", f"/monitoring/alerts/{alert.pk}/",
        "/costs/", "/costs/quotas/", "/audit/", "/settings/", "/sso/service-accounts",
    ], f"/deployments/{deployment.pk}/"


def test_every_page_has_no_serious_axe_violation_and_no_sideways_scroll(page, login, pages):
    admin, paths, healthy_deployment = pages
    login(page, admin)
    axe = Axe()
    problems, charts, started = [], 0, time.monotonic()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            # Scripts (plotly.js, the charts) run before DOMContentLoaded; a loaded CI machine needs the margin.
            response = page.goto(path, wait_until="domcontentloaded", timeout=30_000)
            assert response.status == 200, f"{path}: {response.status}"
            overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
            if overflow > 0:
                problems.append(f"{path} at {width} px scrolls sideways by {overflow} px: {page.evaluate(WIDEST)}")
            chart = page.locator(".js-plotly-plot").first
            if width != WIDTHS[0] and chart.count():
                # Drawn, not only laid out: an overflow box around the charts at phone widths painted them blank.
                if _painted_share(chart.screenshot()) < 0.02:
                    problems.append(f"{path} at {width} px: chart #{chart.get_attribute('id')} is blank")
            if width == WIDTHS[0]:
                problems.extend(f"{path}: chart {problem}" for problem in page.evaluate(CHARTS_WITHOUT_TEXT))
                charts += page.locator(".js-plotly-plot").count()
                # Colours, names and roles do not change with the width: one axe pass per page.
                violations = axe.run(page, options=AXE_OPTIONS).response["violations"]
                for violation in violations:
                    if violation["impact"] in BLOCKING_IMPACTS:
                        targets = [node["html"][:120] for node in violation["nodes"][:3]]
                        problems.append(f"{path}: {violation['impact']} {violation['id']} "
                                        f"({violation['help']}) at {targets}")
    page.goto(healthy_deployment)
    expect(page.locator("#status-badge")).to_have_text("Healthy")
    expect(page.locator("#status-badge")).to_have_css("color", "rgb(20, 108, 46)")  # --ok: green, 5.8:1 on its badge
    print(f"\n{len(paths)} pages x {len(WIDTHS)} widths ({charts} charts) in {time.monotonic() - started:.1f} s")
    assert charts >= 5  # a chart on each of the drift page, costs, audit, the model page and the deployment
    assert not problems, "\n".join(problems)
