"""Matrix cases for /api/v1/registry/ (no MLflow needed: rows are made directly, publishing is only queued)."""
from django.utils import timezone

from apps.registry.choices import AliasSource, PromotionStatus
from apps.registry.models import AliasHolding, Environment, PolicyFloor, PromotionRequest, SyncRun
from tests.factories import member
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

from .base import Case


def _model(team, actor):
    return RegisteredModelFactory(team=team, team_source="assigned")


def _version(team, actor):
    return ModelVersionFactory(model=_model(team, actor))


def _version_with_production_policy(team, actor):
    policy(team, "production", approvals=1)  # production is protected: a team needs its own policy there
    return _version(team, actor)


def _held_model(team, actor):
    version = _version(team, actor)
    version.aliases = ["staging"]
    version.save()
    AliasHolding.objects.create(model=version.model, alias="staging", version=version, version_number=version.version,
                                since=timezone.now(), source=AliasSource.OUTSIDE)
    return version.model


def _policy(team, actor):
    return policy(team, "staging", approvals=1)


def _request(team, actor, *, gates_passed=True):
    """An open request by someone else, for a version registered by someone else: anyone allowed may decide."""
    version = _version(team, actor)
    snapshot = {"approvals_required": 2, "approver_roles": ["approver", "team_admin"], "expiry_hours": 72, "gates": []}
    results = [] if gates_passed else [{"kind": "metric", "metric": "accuracy", "value": 0.5, "op": ">=",
                                        "threshold": 0.9, "passed": False, "message": "accuracy = 0.5 fails >= 0.9."}]
    return PromotionRequest.objects.create(
        team=team, version=version, environment=Environment.objects.get(name="production"),
        requested_by=member(team, "ml_engineer"), policy=snapshot, gate_results=results, gates_passed=gates_passed,
        status=PromotionStatus.REQUESTED, expires_at=timezone.now() + timezone.timedelta(hours=72))


def _request_needing_attention(team, actor):
    """An approved request whose publishing gave up (retrying only queues a publish: no MLflow needed)."""
    request = _request(team, actor)
    PromotionRequest.objects.filter(pk=request.pk).update(status=PromotionStatus.NEEDS_ATTENTION, attempts=10,
                                                          last_error="ConnectionError: MLflow unreachable")
    request.refresh_from_db()
    return request


def _floor(team, actor):
    return PolicyFloor.objects.get(environment__name="production")  # made by the registry's data migration


def _sync_run(team, actor):
    return SyncRun.objects.create(trigger="manual", team=team)


CASES: dict[str, Case] = {
    "api:registry-model-list": Case(make=_model),
    "api:registry-model-detail": Case(make=_model),
    "api:registry-model-assign-team": Case(make=_model, body={"post": lambda team, obj: {"team": team.slug}},
                                           success={"post": 200}),
    "api:registry-model-revoke-alias": Case(make=_held_model,
                                            body={"post": lambda team, obj: {"environment": "staging",
                                                                             "reason": "bad canary"}}),
    "api:registry-model-alias-history": Case(make=_held_model),
    "api:registry-model-alias-history-export": Case(make=_held_model, query=lambda team, obj: {"format": "jsonl"}),
    "api:registry-version-list": Case(make=_version),
    "api:registry-version-detail": Case(make=_version),
    "api:registry-version-gates": Case(make=_version, query=lambda team, obj: {"environment": "production"}),
    "api:registry-version-request-promotion": Case(
        make=_version_with_production_policy, body={"post": lambda team, obj: {"environment": "production", "comment": "ship it"}}),
    "api:registry-policy-list": Case(
        make=_policy, body={"post": lambda team, obj: {"team": team.slug, "environment": "production",
                                                       "approvals_required": 2}}),
    "api:registry-policy-detail": Case(make=_policy, body={"patch": lambda team, obj: {"approvals_required": 3}}),
    "api:registry-policy-floor-list": Case(
        make=_floor, body={"post": lambda team, obj: {"environment": "staging", "approvals_required": 1}}),
    "api:registry-policy-floor-detail": Case(make=_floor, body={"patch": lambda team, obj: {"approvals_required": 2}}),
    "api:registry-promotion-list": Case(make=_request),
    "api:registry-promotion-detail": Case(make=_request),
    "api:registry-promotion-inbox": Case(make=_request, list_like=True),
    "api:registry-promotion-approve": Case(make=_request, body={"post": lambda team, obj: {"comment": "ok"}},
                                           success={"post": 200}),
    "api:registry-promotion-reject": Case(make=_request, body={"post": lambda team, obj: {"comment": "no"}},
                                          success={"post": 200}),
    "api:registry-promotion-cancel": Case(make=_request, body={"post": lambda team, obj: {}}, success={"post": 200}),
    "api:registry-promotion-override": Case(make=lambda team, actor: _request(team, actor, gates_passed=False),
                                            body={"post": lambda team, obj: {"reason": "reviewed offline"}},
                                            success={"post": 200}),
    "api:registry-promotion-retry-publish": Case(make=_request_needing_attention,
                                                 body={"post": lambda team, obj: {}}, success={"post": 200}),
    "api:registry-sync": Case(body={"post": lambda team, obj: {"team": team.slug}}, success={"post": 202}),
    "api:registry-sync-run-list": Case(make=_sync_run),
    "api:registry-sync-run-detail": Case(make=_sync_run),
    # MLflow's signed deliveries: the signature is the credential, so every caller without one is refused alike.
    "api:registry-mlflow-webhook": Case(body={"post": lambda team, obj: {"entity": "model_version", "data": {}}},
                                        success={"post": 401}),
}
