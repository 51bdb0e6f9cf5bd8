"""Nothing gives up silently: a publish out of attempts, or one MLflow can't take (the version was deleted
there), leaves the request visibly needing attention with its last error, until a team admin retries it.

Publishing runs on the runner (kind registry.publish; before, an idempotent task retried itself 10 times): these
tests drive it with runner ticks where they used to apply the task with a retry count."""
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from apps.audit.models import AuditEvent
from apps.core import runner
from apps.outbox.models import OutboxMessage
from apps.registry import services
from apps.registry.choices import PromotionStatus
from apps.registry.models import AliasHolding, PromotionRequest
from apps.registry.tasks import publish_promotion_task

API = "/api/v1/registry"


def run_publish(dedup_key: str):
    """Deliver one queued hint through the real task (what the worker would do)."""
    message = OutboxMessage.objects.get(dedup_key=dedup_key)
    return publish_promotion_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}, throw=True).get()


def actions_of(request) -> list[str]:
    return list(AuditEvent.objects.filter(object_type="registry.promotionrequest", object_id=str(request.pk))
                .order_by("id").values_list("action", flat=True))


def test_publish_out_of_attempts_needs_attention_until_an_admin_retries(own_model, people, team, mlflow_uri,
                                                                        settings, client_for):
    from mlflow import MlflowClient

    request = services.promotion_request(actor=people["dave"], version=own_model["v2"], environment="staging")
    assert request.status == PromotionStatus.APPROVED  # no staging policy: approved at once
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    assert run_publish(f"registry-publish:{request.pk}") == {"retry": 1}
    request.refresh_from_db()
    assert (request.status, request.attempts) == (PromotionStatus.APPROVED, 1) and request.next_attempt_at
    # Eight more attempts fail alike (each waits out MLflow's own client retries, so they are skipped here);
    # after the backoff the tenth and last fails too, and gives up.
    PromotionRequest.objects.filter(pk=request.pk).update(attempts=9, next_attempt_at=timezone.now())
    assert runner.tick(services.PUBLISH_KIND) == {"needs_attention": 1}
    request.refresh_from_db()
    assert request.status == PromotionStatus.NEEDS_ATTENTION and request.attempts == 10
    assert "Connection" in request.last_error
    assert not AliasHolding.objects.filter(model=own_model["model"], alias="staging").exists()
    assert actions_of(request)[-1] == "registry.promotion.publish_failed"

    # Visible on the request page (with Retry for a team admin), the model page and the API.
    admin_page = Client()
    admin_page.force_login(people["admin"])
    page = admin_page.get(f"/registry/requests/{request.pk}/").content.decode()
    assert "Needs attention: publishing to MLflow failed" in page and escape(request.last_error) in page
    assert "Retry publishing" in page
    assert "Needs attention" in admin_page.get(f"/registry/models/{own_model['model'].pk}/").content.decode()
    assert 'id="needs-attention"' in admin_page.get("/registry/inbox/").content.decode()
    body = client_for(people["vera"]).get(f"{API}/promotions/{request.pk}/").json()
    assert body["status"] == "needs_attention" and body["publish_error"] == body["last_error"] == request.last_error

    # Retry: team admins only, audited, a fresh round of attempts.
    denied = client_for(people["bob"]).post(f"{API}/promotions/{request.pk}/retry-publish/")
    assert denied.status_code == 403 and "administer" in denied.json()["error"]["message"]
    settings.MLFLOW_TRACKING_URI = mlflow_uri
    response = client_for(people["admin"]).post(f"{API}/promotions/{request.pk}/retry-publish/")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert (response.json()["publish_error"], response.json()["attempts"]) == ("", 0)
    assert actions_of(request)[-1] == "registry.promotion.retry_publish"
    assert runner.tick(services.PUBLISH_KIND) == {"done": 1}  # the retry's wake-up, or the sweep
    request.refresh_from_db()
    assert request.status == PromotionStatus.PUBLISHED
    assert MlflowClient(mlflow_uri).get_model_version_by_alias(own_model["model"].name, "staging").version == "2"
    again = client_for(people["admin"]).post(f"{API}/promotions/{request.pk}/retry-publish/")
    assert again.status_code == 409 and "only a request whose publishing needs attention" in \
        again.json()["error"]["message"]


def test_publish_of_a_version_deleted_in_mlflow_needs_attention_at_once(own_model, people, team, mlflow_uri,
                                                                        client_for):
    from mlflow import MlflowClient

    request = services.promotion_request(actor=people["dave"], version=own_model["v1"], environment="staging")
    MlflowClient(mlflow_uri).delete_model_version(own_model["model"].name, "1")
    # The first attempt: MLflow refuses the alias; retrying can't help, so no retries are spent.
    assert run_publish(f"registry-publish:{request.pk}") == {"needs_attention": 1}
    request.refresh_from_db()
    assert request.status == PromotionStatus.NEEDS_ATTENTION and request.attempts == 1
    assert "MLflow has no" in request.last_error
    # Once the sync saw the deletion, a retry gives up before calling MLflow, saying what to do.
    services.sync_run_now(actor=None)
    client_for(people["admin"]).post(f"{API}/promotions/{request.pk}/retry-publish/")
    assert services.promotion_publish(request_id=request.pk) == "needs_attention"
    request.refresh_from_db()
    assert request.status == PromotionStatus.NEEDS_ATTENTION and request.attempts == 1
    assert "was deleted in MLflow" in request.last_error
    assert actions_of(request)[-3:] == ["registry.promotion.publish_failed", "registry.promotion.retry_publish",
                                        "registry.promotion.publish_failed"]
    assert not AliasHolding.objects.filter(model=own_model["model"], alias="staging").exists()
