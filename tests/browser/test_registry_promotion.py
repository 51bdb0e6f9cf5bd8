"""Registry pages in a real browser: request a promotion, two approvers approve, the alias shows (and is set in
MLflow); a failing gate is shown metric by metric."""
import pytest
from playwright.sync_api import expect

from apps.outbox.models import OutboxMessage
from apps.registry import services
from apps.registry.models import RegisteredModel
from apps.registry.tasks import publish_promotion_task
from tests.factories import member
from tests.registry.conftest import register_version, unique_name  # noqa: F401  (fixtures)
from tests.registry.factories import policy


@pytest.fixture
def fraud_people(team):
    return {"dave": member(team, "ml_engineer", "dave-b"), "bob": member(team, "approver", "bob-b"),
            "carol": member(team, "approver", "carol-b")}


@pytest.fixture
def environments(transactional_db):
    """transactional_db flushes the rows migrations created; put the default environments back."""
    from apps.registry.models import Environment

    for name, rank in (("staging", 10), ("production", 20)):
        Environment.objects.get_or_create(name=name, defaults={"rank": rank})


@pytest.fixture
def browser_model(register_version, unique_name, team, environments):
    name = unique_name("browser")
    register_version(name, {"accuracy": 0.80, "latency_p95_ms": 9.0})
    register_version(name, {"accuracy": 0.96, "latency_p95_ms": 11.0})
    services.sync_run_now(actor=None)
    return RegisteredModel.objects.get(name=name)


def switch_user(page, login, user):
    page.context.clear_cookies()
    login(page, user)


def test_request_two_approvals_alias_shows(page, login, browser_model, fraud_people, team, mlflow_uri):
    policy(team, approvals=2, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9}])
    login(page, fraud_people["dave"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Registry").click()
    page.get_by_label("Search").fill(browser_model.name)
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name=browser_model.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(browser_model.name)
    page.get_by_role("link", name="v2", exact=True).click()
    section = page.locator("#request-promotion")
    section.get_by_label("Environment").select_option("production")
    section.get_by_label("Comment").fill("better accuracy")
    section.get_by_role("button", name="Request promotion").click()
    expect(page.locator("#request-status")).to_have_text("Waiting for approval")
    request_url = page.url

    for approver in ("bob", "carol"):
        switch_user(page, login, fraud_people[approver])
        page.goto("/registry/inbox/")
        waiting = page.locator("#waiting tbody tr", has_text=browser_model.name)
        expect(waiting).to_have_count(1)
        waiting.get_by_role("link").first.click()
        page.get_by_label("Comment").fill(f"ok from {approver}")
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_role("status")).to_contain_text("Request #")
        if approver == "bob":
            # After deciding, the page (rendered after the redirect) has no Approve or Reject for bob.
            expect(page.get_by_role("button", name="Approve")).to_have_count(0)
            expect(page.get_by_role("button", name="Reject")).to_have_count(0)
            expect(page.locator("#no-decision")).to_contain_text("You already approved this request")
            expect(page.locator("#approval-progress")).to_contain_text("1 of 2 approvals (bob-b)")
            # The inbox shows the progress and who may still approve (never the requester).
            page.goto("/registry/inbox/")
            expect(page.locator("#waiting tbody tr", has_text=browser_model.name)).to_have_count(0)
            row = page.locator("#open tbody tr", has_text=browser_model.name)
            expect(row.locator(".approvals-progress")).to_have_text("1 of 2")
            expect(row.locator(".still-names")).to_have_text("carol-b (Approver)")

    expect(page.locator("#request-status")).to_have_text("Approved, publishing to MLflow")
    # What the worker does with the outbox message (run here so the test needs no worker process).
    message = OutboxMessage.objects.get(topic="registry.publish_promotion")
    publish_promotion_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}, throw=True)
    page.goto(request_url)
    expect(page.locator("#request-status")).to_have_text("Published")
    expect(page.locator("#timeline")).to_contain_text("alias 'production' set in MLflow")
    page.get_by_role("link", name=f"{browser_model.name} v2").click()
    page.get_by_role("link", name=f"← {browser_model.name}").click()
    expect(page.locator("#alias-production")).to_have_text("v2")
    expect(page.locator("#alias-history-table")).to_contain_text("bob-b, carol-b")

    from mlflow import MlflowClient
    assert MlflowClient(mlflow_uri).get_model_version_by_alias(browser_model.name, "production").version == "2"


def test_gate_failure_shown_metric_by_metric(page, login, browser_model, fraud_people, team):
    policy(team, approvals=1, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9},
                                     {"kind": "metric", "metric": "fairness_gap", "op": "<=", "threshold": 0.05},
                                     {"kind": "metric", "metric": "latency_p95_ms", "op": "<=", "threshold": 50}])
    login(page, fraud_people["dave"])
    page.goto(f"/registry/models/{browser_model.pk}/")
    page.get_by_role("link", name="v1", exact=True).click()
    gates = page.locator("#gates")
    expect(gates.locator("tr[data-metric='accuracy']")).to_contain_text("fail")
    expect(gates.locator("tr[data-metric='accuracy']")).to_contain_text("accuracy = 0.8 fails >= 0.9")
    expect(gates.locator("tr[data-metric='fairness_gap']")).to_contain_text("Metric 'fairness_gap' is missing")
    expect(gates.locator("tr[data-metric='latency_p95_ms']")).to_contain_text("pass")
    page.locator("#request-promotion").get_by_label("Environment").select_option("production")
    page.locator("#request-promotion").get_by_role("button", name="Request promotion").click()
    expect(page.locator("#request-status")).to_have_text("Waiting for approval")

    switch_user(page, login, fraud_people["bob"])
    page.goto("/registry/inbox/")
    page.locator("#waiting tbody tr", has_text=browser_model.name).get_by_role("link").first.click()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Quality gates fail")
    expect(page.get_by_role("status")).to_contain_text("accuracy = 0.8 fails >= 0.9")
    expect(page.locator("#request-status")).to_have_text("Waiting for approval")
