"""Approval is bound to the artifact: a promotion records the sha256 digest of the version's files, and every
apply (deploy, canary step, rollback) re-checks it against MLflow's artifact store before anything serves.
Tampering happens the way an attacker with write access to the store would do it: on disk, behind MLflow."""
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.db import transaction
from django.test import Client

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict
from apps.deployments.models import Deployment, DeploymentRevision, LocalProcess
from apps.deployments.rollout import rollout_drive
from apps.deployments.services import deployment_create, deployment_promote, deployment_rollback
from apps.outbox.models import OutboxMessage
from apps.registry import services as registry
from apps.registry.models import ModelVersion, PromotionRequest, RegisteredModel
from tests.deployments.conftest import ROWS, local, local_dir, staging  # noqa: F401 (fixtures)
from tests.deployments.factories import kube_cluster
from tests.factories import WebhookEndpointFactory, member
from tests.harness.kube_server import kube_server  # noqa: F401 (fixture)
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy

pytestmark = pytest.mark.mlflow

RESOURCES = {"cpu": "250m", "memory": "256Mi"}
MODEL_FILE = "model.skops"  # what mlflow.sklearn writes


@pytest.fixture
def people(team):
    return {"eng": member(team, "ml_engineer", "eng"), "bob": member(team, "approver", "bob")}


@pytest.fixture(scope="session")
def digest_model(mlflow_server):
    """A model of this module's own in MLflow (logged once): v1 predicts 0, v2 predicts 1. Tests tamper with
    its files through `tamper`, which puts the original bytes back afterwards."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.dummy import DummyClassifier

    name = f"digest-{uuid.uuid4().hex[:8]}"
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    for constant in (0, 1):
        with mlflow.start_run():
            mlflow.sklearn.log_model(DummyClassifier(strategy="constant", constant=constant).fit(x, [0, 1, constant]),
                                     name="model", registered_model_name=name, pip_requirements=["scikit-learn"])
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    # Where the files are, as the sync records it (mlflow_api.model_details).
    uris = {n: client.get_model_version_download_uri(name, str(n)) for n in (1, 2)}
    return {"name": name, "uris": uris}


@pytest.fixture
def model(digest_model, team, staging, mlflow_uri):
    """The module's MLflow model as the control plane knows it, with a staging policy of one approval."""
    name = digest_model["name"]
    registered = RegisteredModel.objects.create(name=name, team=team, team_source="assigned")
    for number, uri in digest_model["uris"].items():
        ModelVersion.objects.create(model=registered, version=number, source=f"models:/{name}/{number}",
                                    artifact_uri=uri)
    policy(team, "staging", approvals=1, roles=("approver",))
    WebhookEndpointFactory(team=team, events=["deployment."])
    return registered


@pytest.fixture
def tamper(mlflow_server):
    """tamper(version, with_file_of=None): replace the model file in the artifact store on disk (by another
    version's, or by junk), behind MLflow's back; the original is restored after the test."""
    originals = {}

    def model_file(version) -> Path:
        return mlflow_server.workdir / "artifacts" / urlparse(version.artifact_uri).path.lstrip("/") / MODEL_FILE

    def replace(version, with_file_of=None) -> None:
        target = model_file(version)
        originals.setdefault(target, target.read_bytes())
        target.write_bytes(model_file(with_file_of).read_bytes() if with_file_of else b"not the approved model")

    yield replace
    for path, data in originals.items():
        path.write_bytes(data)


def approve(version, people) -> PromotionRequest:
    """Request → approve → publish (the alias is set in MLflow), as the registry pages do it."""
    request = registry.promotion_request(actor=people["eng"], version=version, environment="staging")
    request = registry.promotion_approve(actor=people["bob"], request=request)
    with transaction.atomic():
        registry.promotion_publish(request_id=request.pk)
    request.refresh_from_db()
    assert request.status == "published"
    return request


def deployment_at(team, cluster, env, *, serving, canary=None, warm=None) -> Deployment:
    """A deployment built directly in a settled state (a refused apply needs no model server): `serving` has
    100 % (90 % with a `canary` of 10 % waiting for promotion); `warm` is the previous revision, kept warm."""
    from datetime import timedelta

    from django.utils import timezone

    deployment = Deployment.objects.create(team=team, name="digest", model=serving.model, environment=env,
                                           cluster=cluster, namespace=f"{team.slug}-staging",
                                           status="awaiting_promotion" if canary else "healthy")

    def revision(version, strategy=None):
        return DeploymentRevision.objects.create(
            deployment=deployment, number=deployment.revisions.count() + 1, model_version=version, status="ready",
            resources=RESOURCES, strategy=strategy or {"kind": "rolling"}, manifests=[{"kind": "LocalModelServer"}])

    fields = {}
    if warm:
        fields.update(warm_revision=revision(warm), warm_until=timezone.now() + timedelta(minutes=30))
    stable = revision(serving)
    fields.update(stable_revision=stable, current_revision=stable, traffic={str(stable.number): 100})
    if canary:
        new = revision(canary, {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100, "pause": False}]})
        fields.update(current_revision=new, rollout_step=0, traffic={str(stable.number): 90, str(new.number): 10})
    Deployment.objects.filter(pk=deployment.pk).update(**fields)
    deployment.refresh_from_db()
    return deployment


def assert_refused(deployment, revision_number: int, *, changes: list[str]) -> AuditEvent:
    deployment.refresh_from_db()
    revision = deployment.revisions.get(number=revision_number)
    assert revision.status == "artifact_changed", revision.message
    assert "changed since request" in revision.message and f"{MODEL_FILE} changed" in revision.message
    assert deployment.status == "failed" and "refused" in deployment.status_message
    event = AuditEvent.objects.filter(action="deployment.artifact_changed", object_id=str(deployment.pk)).get()
    approved, found = event.changes["artifact_digest"]
    assert approved.startswith("sha256:") and found.startswith("sha256:") and approved != found
    assert event.changes["artifact_changes"] == [None, changes]
    alert = OutboxMessage.objects.get(topic="teams.deliver_webhook", payload__event="deployment.artifact_changed")
    assert alert.payload["body"]["revision"] == revision_number and "refused" in alert.payload["body"]["text"]
    return event


def test_request_and_approval_carry_the_digest_and_a_changed_artifact_is_never_served(
        model, people, team, staging, local, local_dir, tamper, client_for):
    v1, v2 = model.versions.order_by("version")
    request = approve(v2, people)
    assert request.artifact_digest.startswith("sha256:") and len(request.artifact_digest) == 71
    assert set(request.artifact_manifest["files"]) >= {"MLmodel", MODEL_FILE}
    assert request.approvals.get().artifact_digest == request.artifact_digest
    assert AuditEvent.objects.get(action="registry.promotion.request", object_id=str(request.pk)).changes[
        "artifact_digest"] == [None, request.artifact_digest]
    shown = client_for(people["bob"]).get(f"/api/v1/registry/promotions/{request.pk}/").json()
    assert shown["artifact_digest"] == request.artifact_digest == shown["approvals"][0]["artifact_digest"]
    page = Client()
    page.force_login(people["bob"])
    assert request.artifact_digest in page.get(f"/registry/requests/{request.pk}/").content.decode()

    tamper(v2, with_file_of=v1)
    deployment = deployment_create(actor=people["eng"], team=team, name="digest", model_version=v2,
                                   environment=staging, cluster=local, resources=RESOURCES)
    assert rollout_drive(deployment_id=deployment.pk).startswith("refused: The artifacts of")
    assert_refused(deployment, 1, changes=[f"{MODEL_FILE} changed"])
    assert not LocalProcess.objects.filter(deployment=deployment).exists()  # no model server ever started
    assert not list(Path(local_dir).glob("deployment-*/server-*.pid"))


def test_unchanged_artifacts_deploy_and_serve(model, people, team, staging, local, local_dir):
    import requests

    v2 = model.versions.get(version=2)
    approve(v2, people)
    deployment = deployment_create(actor=people["eng"], team=team, name="digest", model_version=v2,
                                   environment=staging, cluster=local, resources=RESOURCES)
    assert "routed" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy"
    assert requests.post(deployment.endpoint_url, json=ROWS, timeout=30).json()["predictions"] == [1]


def test_canary_step_with_changed_artifacts_is_refused_and_traffic_returns_to_stable(
        model, people, team, staging, local, tamper):
    v1, v2 = model.versions.order_by("version")
    approve(v1, people)
    approve(v2, people)
    deployment = deployment_at(team, local, staging, serving=v1, canary=v2)
    tamper(v2)
    with pytest.raises(Conflict) as refused:
        deployment_promote(actor=people["eng"], deployment=deployment)
    assert refused.value.code == "artifact_changed" and f"{MODEL_FILE} changed" in refused.value.message
    event = assert_refused(deployment, 2, changes=[f"{MODEL_FILE} changed"])
    assert event.actor == people["eng"]
    assert deployment.traffic == {"1": 100}  # the stable revision takes the canary's share back


def test_rollback_to_a_revision_whose_artifacts_changed_is_refused(model, people, team, staging, local, local_dir,
                                                                   tamper):
    v2 = model.versions.get(version=2)
    approve(v2, people)
    # r1 (warm) and r2 (serving) both run v2; the rollback to r1 re-applies v2's files, which changed meanwhile.
    deployment = deployment_at(team, local, staging, serving=v2, warm=v2)
    tamper(v2)
    rollback = deployment_rollback(actor=people["eng"], deployment=deployment, reason="latency")
    assert rollback.number == 3 and rollback.rollback_of.number == 1
    assert rollout_drive(deployment_id=deployment.pk).startswith("refused:")
    assert_refused(deployment, 3, changes=[f"{MODEL_FILE} changed"])
    assert deployment.traffic == {"2": 100}
    assert not LocalProcess.objects.filter(deployment=deployment, role="server").exists()


def test_kubernetes_target_gets_nothing_applied(model, people, team, staging, kube_server, tamper):
    """The Kubernetes driver points the server at the storage URI; the check reads that location in MLflow
    first, so a changed artifact never reaches the API server."""
    v2 = model.versions.get(version=2)
    approve(v2, people)
    tamper(v2)
    cluster = kube_cluster(url=kube_server.url, team=team)
    deployment = deployment_create(actor=people["eng"], team=team, name="digest", model_version=v2,
                                   environment=staging, cluster=cluster, resources=RESOURCES)
    assert rollout_drive(deployment_id=deployment.pk).startswith("refused: The artifacts of")
    assert_refused(deployment, 1, changes=[f"{MODEL_FILE} changed"])
    assert deployment.revisions.get().apply_requested_at is None
    for plural, name in (("apps/v1/deployments", "digest-r1"), ("v1/services", "digest")):
        assert kube_server.call(lambda k: k.get(plural, deployment.namespace, name)) is None


def test_an_approval_without_a_digest_does_not_deploy(model, people, team, staging, local, local_dir):
    """Fail closed: an approval made before digests existed binds to nothing, so it serves nothing."""
    v2 = model.versions.get(version=2)
    request = approve(v2, people)
    PromotionRequest.objects.filter(pk=request.pk).update(artifact_digest="", artifact_manifest={})
    deployment = deployment_create(actor=people["eng"], team=team, name="digest", model_version=v2,
                                   environment=staging, cluster=local, resources=RESOURCES)
    assert "request the promotion again" in rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "failed" and deployment.revisions.get().status == "artifact_changed"
    assert not LocalProcess.objects.filter(deployment=deployment).exists()


def test_a_digest_edited_in_the_database_fails_its_signature(model, people, team, staging, local, local_dir, tamper):
    """Someone with database access re-binds the approval to replaced files: the platform's signature over
    {model, version, environment, digest} no longer verifies, so nothing is served."""
    from apps.registry.artifacts import version_manifest

    v2 = model.versions.get(version=2)
    request = approve(v2, people)
    assert request.artifact_signature
    tamper(v2)
    forged = version_manifest(v2)
    PromotionRequest.objects.filter(pk=request.pk).update(artifact_digest=forged["digest"], artifact_manifest=forged)
    deployment = deployment_create(actor=people["eng"], team=team, name="digest", model_version=v2,
                                   environment=staging, cluster=local, resources=RESOURCES)
    assert "does not carry this platform's signature" in rollout_drive(deployment_id=deployment.pk)
    assert not LocalProcess.objects.filter(deployment=deployment).exists()


def test_unreadable_artifacts_cannot_be_requested(team, people, staging, client_for, tmp_path):
    version = ModelVersionFactory(model=RegisteredModelFactory(team=team, team_source="assigned"),
                                  artifact_uri=(tmp_path / "gone").as_uri())
    response = client_for(people["eng"]).post(f"/api/v1/registry/versions/{version.pk}/request-promotion/",
                                              {"environment": "staging"}, format="json")
    assert response.status_code == 409, response.json()
    error = response.json()["error"]
    assert error["code"] == "artifacts_unreadable" and "does not exist" in error["message"]
    assert not PromotionRequest.objects.exists()
