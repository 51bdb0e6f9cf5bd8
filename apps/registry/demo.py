"""Demo registry state, seeded after apps.demo.seed has put the fraud-classifier model in MLflow.

- syncs MLflow into the control plane;
- the platform floor for `production` (protected): at least 2 approvals from approvers or team admins, set by the
  platform admin; every team's production policy must meet it;
- fraud's production policy: 2 approvals from approvers, gates accuracy >= 0.90, latency_p95_ms <= 50,
  fairness_gap <= 0.05 and no regression of accuracy by more than 0.02 against the production holder;
  fraud's staging policy: 1 approval from an approver or team admin, accuracy >= 0.90;
- version 1 went to `production` first: its fairness gate fails (0.09 > 0.05), so alice (team admin)
  recorded an override with a reason before bob and carol approved;
- `promote_to_production(version_number=2)` (called after the deployments demo served v1) moves the
  alias to version 2 with all gates passing, approved by bob and carol, published to MLflow in the seed;
- version 1 → staging requested by dave and left waiting in bob's and carol's inbox.
Safe to re-run: what exists is left alone.
"""
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import transaction

from apps.teams.models import Team

from . import services
from .choices import PromotionStatus
from .models import ApprovalPolicy, ModelVersion, PolicyFloor, PromotionRequest, RegisteredModel

MODEL_NAME = "fraud-classifier"
TEAM = "fraud"
PRODUCTION_GATES = [
    {"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.90},
    {"kind": "metric", "metric": "latency_p95_ms", "op": "<=", "threshold": 50},
    {"kind": "metric", "metric": "fairness_gap", "op": "<=", "threshold": 0.05},
    {"kind": "no_regression", "metric": "accuracy", "op": ">=", "threshold": 0.02},
]
STAGING_GATES = [{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.90}]


def _report(log, created: bool, what: str) -> None:
    log(f"  {'created' if created else 'found'.ljust(7)}  {what}")


def seed_registry(*, log: Callable[[str], None]) -> None:
    User = get_user_model()
    users = {u.username: u for u in User.objects.filter(username__in=["alice", "bob", "carol", "dave"])}
    run = services.sync_run_now(actor=None)
    log(f"  synced   {run.counts.get('models', 0)} models, {run.counts.get('versions', 0)} versions from MLflow")
    model = RegisteredModel.objects.filter(name=MODEL_NAME).first()
    team = Team.objects.filter(slug=TEAM).first()
    if model is None or team is None or model.team_id != team.pk or len(users) < 4:
        log(f"  skipped  registry demo: {MODEL_NAME} or the fraud team and its users are missing")
        return
    _seed_production_floor(log=log)
    for env, kwargs in (("production", {"approvals_required": 2, "approver_roles": ["approver"],
                                        "gates": PRODUCTION_GATES}),
                        ("staging", {"approvals_required": 1, "approver_roles": ["approver", "team_admin"],
                                     "gates": STAGING_GATES})):
        exists = ApprovalPolicy.objects.filter(team=team, environment__name=env).exists()
        if not exists:
            services.policy_create(actor=users["alice"], team=team, environment=env, expiry_hours=24 * 14, **kwargs)
        _report(log, not exists, f"approval policy {TEAM} → {env}")

    if not PromotionRequest.objects.filter(version__model=model, environment__name="production",
                                           status=PromotionStatus.PUBLISHED).exists():
        _promote(version=model.versions.get(version=1), users=users, comment="v1: the model already serving fraud checks",
                 override="v1 predates the fairness gate; it replaces the rules engine while v2 is trained")
        _report(log, True, f"{MODEL_NAME} v1 → production (fairness gate overridden by alice, approved by bob and "
                           f"carol, alias set in MLflow)")
    v1 = model.versions.get(version=1)
    waiting = PromotionRequest.objects.filter(version=v1, environment__name="staging").exists()
    if not waiting:
        services.promotion_request(actor=users["dave"], version=v1, environment="staging",
                                   comment="Baseline for the staging canary comparison")
    _report(log, not waiting, f"{MODEL_NAME} v1 → staging request waiting for bob or carol")


def _seed_production_floor(*, log: Callable[[str], None]) -> None:
    admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    floor = PolicyFloor.objects.filter(environment__name="production").first()
    raise_it = admin is not None and floor is not None and floor.approvals_required < 2
    if raise_it:
        services.policy_floor_update(actor=admin, floor=floor, protected=True, approvals_required=2)
    if floor is not None:
        _report(log, raise_it, "platform floor → production: protected, 2 approvals")


def promote_to_production(*, log: Callable[[str], None], version_number: int) -> None:
    users = {u.username: u for u in get_user_model().objects.filter(username__in=["alice", "bob", "carol", "dave"])}
    version = ModelVersion.objects.filter(model__name=MODEL_NAME, version=version_number).first()
    if version is None or len(users) < 4:
        log(f"  skipped  {MODEL_NAME} v{version_number} → production: the version or the demo users are missing")
        return
    done = PromotionRequest.objects.filter(version=version, environment__name="production",
                                           status=PromotionStatus.PUBLISHED).exists()
    if not done:
        _promote(version=version, users=users, comment=f"v{version_number}: higher accuracy, same latency")
    _report(log, not done, f"{MODEL_NAME} v{version_number} → production (requested by dave, gates pass, approved "
                           f"by bob and carol, alias set in MLflow)")


def _promote(*, version, users, comment: str, override: str = "") -> None:
    from apps.outbox.models import OutboxMessage

    from .tasks import publish_promotion_task

    request = PromotionRequest.objects.filter(version=version, environment__name="production",
                                              status__in=[PromotionStatus.REQUESTED, PromotionStatus.APPROVED]).first()
    if request is None:
        request = services.promotion_request(actor=users["dave"], version=version, environment="production",
                                             comment=comment)
    if override and not request.gates_passed and request.override_at is None:
        request = services.promotion_override(actor=users["alice"], request=request, reason=override)
    for approver in ("bob", "carol"):
        if request.status == PromotionStatus.REQUESTED and not request.approvals.filter(
                user=users[approver]).exists():
            request = services.promotion_approve(actor=users[approver], request=request,
                                                 comment=f"Reviewed by {approver}")
    # Publish now, in this process, instead of waiting for a worker: the receipt makes the queued copy a no-op.
    with transaction.atomic():
        message = OutboxMessage.objects.get(dedup_key=f"registry-publish:{request.pk}")
    publish_promotion_task.apply(kwargs={**message.payload, "dedup_key": message.dedup_key}, throw=True)
