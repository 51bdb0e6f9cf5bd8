"""Idempotency-Key: a CI pipeline that retries "start a GPU job" after a dropped connection gets the first
answer back, not a second job; reusing a key for another request is refused with 422."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.models import IdempotencyKey
from apps.deployments.models import Job
from apps.outbox.models import OutboxMessage
from tests.deployments.factories import environment, kube_cluster
from tests.factories import member

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/deployments/jobs/"


@pytest.fixture
def engineer(team):
    environment("staging")
    kube_cluster(team=team)
    return member(team, "ml_engineer", "eng")


def _job(team, image="registry.local/train:1"):
    return {"team": team.slug, "cluster": "kind", "image": image, "command": ["python", "t.py"]}


def test_same_key_same_body_replays_the_first_response_and_starts_one_job(client_for, engineer, team):
    client = client_for(engineer)
    first = client.post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="ci-run-42")
    again = client.post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="ci-run-42")
    assert first.status_code == again.status_code == 201, (first.json(), again.json())
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Job.objects.count() == 1
    assert OutboxMessage.objects.filter(topic="deployments.dispatch_job").count() == 1


def test_same_key_different_body_is_refused_with_422_and_changes_nothing(client_for, engineer, team):
    client = client_for(engineer)
    client.post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="ci-run-43")
    reused = client.post(JOBS, _job(team, image="registry.local/train:2"), format="json",
                         HTTP_IDEMPOTENCY_KEY="ci-run-43")
    assert reused.status_code == 422, reused.json()
    error = reused.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "already used for a different request" in error["message"]
    assert list(Job.objects.values_list("image", flat=True)) == ["registry.local/train:1"]


def test_keys_belong_to_their_user_and_without_a_key_every_call_counts(client_for, engineer, team):
    other = member(team, "ml_engineer", "eng2")
    client_for(engineer).post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="shared")
    theirs = client_for(other).post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    client_for(engineer).post(JOBS, _job(team), format="json")
    assert Job.objects.count() == 3


def test_a_refused_request_is_replayed_as_refused_and_a_bad_key_is_400(client_for, engineer, team):
    client = client_for(engineer)
    bad = {**_job(team), "namespace": "kube-system"}
    first = client.post(JOBS, bad, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post(JOBS, bad, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 400 and again.json() == first.json()
    malformed = client.post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="x" * 256)
    assert malformed.status_code == 400 and "Idempotency-Key" in malformed.json()["error"]["message"]
    assert not Job.objects.exists()


def test_a_key_older_than_24_hours_is_forgotten(client_for, engineer, team):
    client = client_for(engineer)
    client.post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    later = client.post(JOBS, _job(team), format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert later.status_code == 201 and "Idempotent-Replayed" not in later
    assert Job.objects.count() == 2


def test_schema_documents_the_header_on_posts(client_for, platform_admin):
    schema = client_for(platform_admin).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"][JOBS]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])
    assert "422" in operation["responses"]
