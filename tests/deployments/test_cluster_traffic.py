"""Exact traffic on clusters, end to end: the driver through the official client against the Kubernetes
API emulator (tests/harness/kube_server.py) serving Gateway API HTTPRoutes and KServe InferenceServices,
with fake controllers reporting their status. The split shown by the API and the deployment page is the
one read back from the applied objects; every HTTPRoute and InferenceService the driver applied is
checked against the upstream CRD schemas."""
import json

import pytest
from django.urls import reverse

from apps.deployments.models import Deployment
from apps.deployments.rollout import rollout_drive
from apps.deployments.services import deployment_create, deployment_deploy, deployment_promote, deployment_rollback
from tests.deployments.factories import kube_cluster, model_version
from tests.harness.crd_schemas import gateway_api_errors, kserve_errors
from tests.harness.kube_server import KubeServer, kube_server  # noqa: F401  (fixture)

NS = "fraud-staging"
URL = "/api/v1/deployments/deployments/"
CANARY_10 = {"kind": "canary", "steps": [{"weight": 10, "pause": True}, {"weight": 100}]}
ONE_POD = {"cpu": "500m", "memory": "512Mi", "replicas": 1, "autoscaling": None}


def _gateway_cluster(server, team, *, name="eu-west"):
    server.call(lambda k: k.set_gateway_api(True))
    server.call(lambda k: k.add_gateway("gateways", "public", "203.0.113.7"))
    cluster = kube_cluster(url=server.url, team=team, name=name)
    cluster.gateway_namespace, cluster.gateway_name = "gateways", "public"
    cluster.save(update_fields=["gateway_namespace", "gateway_name"])
    return cluster


@pytest.fixture
def gateway_cluster(kube_server, team, staging):  # noqa: F811
    return _gateway_cluster(kube_server, team)


@pytest.fixture
def versions(team):
    return [model_version(team, version=n) for n in (1, 2, 3)]


def _route(server):
    return server.call(lambda k: k.get("gateway.networking.k8s.io/v1/httproutes", NS, "fraud"))


def _weights(server):
    return [(b["name"], b["weight"]) for b in _route(server)["spec"]["rules"][0]["backendRefs"]]


def _drive(deployment):
    rollout_drive(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    return deployment


def _schemas_hold(server):
    bodies = server.call(lambda k: list(k.applied_bodies))
    routes = [b for b in bodies if b["kind"] == "HTTPRoute"]
    assert gateway_api_errors(routes) == [[] for _ in routes]
    assert [kserve_errors(b) for b in bodies if b["kind"] == "InferenceService"] == \
        [[] for b in bodies if b["kind"] == "InferenceService"]
    return bodies


def test_canary_10_on_gateway_api_applies_90_10_and_reads_it_back(kube_server, gateway_cluster, engineer, team,  # noqa: F811
                                                                   staging, versions, client_for, client):
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=gateway_cluster, resources=ONE_POD))
    assert deployment.status == "healthy", deployment.status_message
    assert [m["kind"] for m in deployment.current_revision.manifests] == ["Deployment", "Service", "NetworkPolicy"]
    assert deployment.current_revision.manifests[1]["metadata"]["name"] == "fraud-r1"
    assert _weights(kube_server) == [("fraud-r1", 100)]
    assert deployment.endpoint_url == "http://203.0.113.7/fraud-staging/fraud/invocations"

    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[1], strategy=CANARY_10)
    deployment = _drive(deployment)
    assert deployment.status == "awaiting_promotion" and deployment.traffic == {"1": 90, "2": 10}
    assert _weights(kube_server) == [("fraud-r1", 90), ("fraud-r2", 10)]
    # Exact: the canary keeps its one pod, no replica ratio.
    assert kube_server.call(lambda k: k.get("apps/v1/deployments", NS, "fraud-r2"))["spec"]["replicas"] == 1
    served = deployment.served_traffic
    assert served["mechanism"] == "gateway-api" and served["split"] == {"1": 90, "2": 10}
    assert served["exact"] and served["ready"], served

    data = client_for(engineer).get(f"{URL}{deployment.pk}/").json()
    assert data["served_traffic"]["split"] == {"1": 90, "2": 10}
    client.force_login(engineer)
    page = client.get(reverse("deployments:detail", kwargs={"pk": deployment.pk})).content.decode()
    status = json.loads(page.split('id="status-data" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert status["served"]["split"] == {"1": 90, "2": 10} and status["served"]["mechanism"] == "gateway-api"
    _schemas_hold(kube_server)


def test_rollback_on_gateway_api_is_a_weight_flip_on_the_same_route(kube_server, gateway_cluster, engineer,  # noqa: F811
                                                                     team, staging, versions):
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=gateway_cluster, resources=ONE_POD))
    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[1], strategy=CANARY_10)
    _drive(deployment)
    deployment_promote(actor=engineer, deployment=deployment)
    deployment = _drive(deployment)
    assert deployment.status == "healthy" and deployment.served_traffic["split"] == {"2": 100}
    # The previous revision stays warm: listed at weight 0, its pod still running.
    assert _weights(kube_server) == [("fraud-r1", 0), ("fraud-r2", 100)]
    route_uid = _route(kube_server)["metadata"]["uid"]

    rollback = deployment_rollback(actor=engineer, deployment=deployment, reason="errors up")
    deployment = _drive(deployment)
    assert deployment.status == "healthy" and rollback.rollback_of.number == 1
    assert _weights(kube_server) == [("fraud-r1", 100), ("fraud-r2", 0)]
    assert _route(kube_server)["metadata"]["uid"] == route_uid
    assert kube_server.call(lambda k: k.get("apps/v1/deployments", NS, "fraud-r2"))["spec"]["replicas"] == 1
    assert deployment.served_traffic["split"] == {"3": 100} and deployment.served_traffic["warm"] == [2]
    _schemas_hold(kube_server)


def test_ab_over_three_revisions_on_gateway_api(kube_server, gateway_cluster, engineer, team, staging, versions):  # noqa: F811
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=gateway_cluster, resources=ONE_POD))
    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[1], strategy={"kind": "rolling"})
    _drive(deployment)
    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[2], strategy={
        "kind": "ab", "variants": [{"revision": 1, "weight": 50}, {"revision": 2, "weight": 30},
                                   {"revision": "new", "weight": 20}]})
    deployment = _drive(deployment)
    assert deployment.status == "healthy", deployment.status_message
    assert deployment.traffic == {"1": 50, "2": 30, "3": 20}
    assert _weights(kube_server) == [("fraud-r1", 50), ("fraud-r2", 30), ("fraud-r3", 20)]
    assert deployment.served_traffic["split"] == {"1": 50, "2": 30, "3": 20} and deployment.served_traffic["ready"]
    _schemas_hold(kube_server)


def test_shadow_mirrors_a_percent_of_requests_on_gateway_api(kube_server, gateway_cluster, engineer, team,  # noqa: F811
                                                              staging, versions):
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=gateway_cluster, resources=ONE_POD))
    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[1],
                      strategy={"kind": "shadow", "percent": 10})
    deployment = _drive(deployment)
    assert deployment.status == "awaiting_promotion" and deployment.shadow == {"revision": 2, "percent": 10}
    rule = _route(kube_server)["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("fraud-r1", 100)]
    assert rule["filters"][-1] == {"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": "fraud-r2", "port": 80}, "percent": 10}}
    served = deployment.served_traffic
    assert served["split"] == {"1": 100} and served["shadow"] == {"revision": 2, "percent": 10}

    deployment_promote(actor=engineer, deployment=deployment)
    deployment = _drive(deployment)
    rule = _route(kube_server)["spec"]["rules"][0]
    assert not [f for f in rule["filters"] if f["type"] == "RequestMirror"]
    assert deployment.served_traffic["split"] == {"2": 100} and deployment.served_traffic["shadow"] == {}
    _schemas_hold(kube_server)


def test_shadow_and_ab_are_refused_only_where_the_cluster_cannot_split(kube_server, engineer, team, staging,  # noqa: F811
                                                                        versions, client_for):
    cluster = kube_cluster(url=kube_server.url, team=team, name="plain")
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=cluster, resources=ONE_POD))
    api = client_for(engineer)
    body = {"model_version": versions[1].pk, "strategy": {"kind": "shadow", "percent": 10}}
    response = api.post(f"{URL}{deployment.pk}/deploy/", body, format="json")
    assert response.status_code == 400
    assert "neither the Gateway API nor KServe" in response.json()["error"]["message"]

    kube_server.call(lambda k: k.set_kserve(True))
    kube_server.call(lambda k: k.set_gateway_api(True))
    from workers.drivers import kubernetes_traffic

    kubernetes_traffic._DISCOVERY.clear()  # what a minute's wait would do
    response = api.post(f"{URL}{deployment.pk}/deploy/", body, format="json")
    assert response.status_code == 400 and "names no Gateway" in response.json()["error"]["message"]

    admin = type(engineer).objects.get(username="cluster-admin")  # kube_cluster's platform admin
    response = client_for(admin).post(f"/api/v1/deployments/clusters/{cluster.pk}/gateway/",
                                      {"gateway": "gateways/public"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["gateway"] == "gateways/public"
    assert client_for(admin).post(f"/api/v1/deployments/clusters/{cluster.pk}/gateway/", {"gateway": "public"},
                                  format="json").status_code == 400
    assert client_for(engineer).post(f"/api/v1/deployments/clusters/{cluster.pk}/gateway/", {"gateway": ""},
                                     format="json").status_code == 403
    kube_server.call(lambda k: k.add_gateway("gateways", "public"))
    response = api.post(f"{URL}{deployment.pk}/deploy/", body, format="json")
    assert response.status_code == 201, response.json()
    # r1 was rendered before the cluster had a Gateway: routing gives it its own Service.
    deployment = _drive(deployment)
    assert deployment.status == "awaiting_promotion", deployment.status_message
    assert _weights(kube_server) == [("fraud-r1", 100)]
    assert kube_server.call(lambda k: k.get("v1/services", NS, "fraud-r1")) is not None
    assert deployment.served_traffic["shadow"] == {"revision": 2, "percent": 10}


def test_kserve_canary_reads_back_the_split_kserve_reports(kube_server, engineer, team, staging, versions):  # noqa: F811
    kube_server.call(lambda k: k.set_kserve(True))
    cluster = kube_cluster(url=kube_server.url, team=team, name="kserve")
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=cluster, resources=ONE_POD))
    assert deployment.served_traffic["mechanism"] == "kserve" and deployment.served_traffic["split"] == {"1": 100}
    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[1], strategy=CANARY_10)
    deployment = _drive(deployment)
    isvc = kube_server.call(lambda k: k.get("serving.kserve.io/v1beta1/inferenceservices", NS, "fraud"))
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert deployment.served_traffic["split"] == {"1": 90, "2": 10} and deployment.served_traffic["ready"]
    _schemas_hold(kube_server)


def test_replica_ratio_fallback_is_shown_as_approximate_with_a_warning(kube_server, engineer, team, staging,  # noqa: F811
                                                                       versions, client_for):
    cluster = kube_cluster(url=kube_server.url, team=team, name="plain")
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=cluster, resources=ONE_POD))
    preview = client_for(engineer).post(f"{URL}preview/", {
        "team": team.slug, "name": "fraud", "model_version": versions[1].pk, "environment": "staging",
        "cluster": "plain", "resources": ONE_POD, "strategy": CANARY_10}, format="json").json()
    first = preview["traffic"]["steps"][0]
    assert preview["traffic"]["mechanism"] == "replica-ratio"
    assert first["exact"] is False and first["split"] == {"1": 50, "2": 50}
    assert "approximate: r1 1 of 2 pods ≈ 50 %, r2 1 of 2 pods ≈ 50 %" == first["note"]
    assert "cannot be met" in first["warning"] and preview["traffic"]["warnings"] == [first["warning"]]

    deployment_deploy(actor=engineer, deployment=deployment, model_version=versions[1], strategy=CANARY_10)
    deployment = _drive(deployment)
    served = deployment.served_traffic
    assert deployment.traffic == {"1": 90, "2": 10}  # what was asked for …
    assert served["mechanism"] == "replica-ratio" and served["split"] == {"1": 50, "2": 50}  # … and what is served
    assert served["exact"] is False and "1 of 2 pods ≈ 50 %" in served["note"]


def test_same_spec_on_two_clusters_shows_each_clusters_split(kube_server, engineer, team, staging, versions,  # noqa: F811
                                                              client_for, client):
    gateway = _gateway_cluster(kube_server, team, name="eu-west")
    second = KubeServer().start()
    try:
        plain = kube_cluster(url=second.url, team=team, name="us-east")
        deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                              environment=staging, cluster=gateway, resources=ONE_POD))
        client.force_login(engineer)
        response = client.post(reverse("deployments:control", kwargs={"pk": deployment.pk, "verb": "replicate"}),
                               {"cluster": "us-east"})
        sibling = Deployment.objects.get(sibling_of=deployment)
        assert response.status_code == 302 and response.url == reverse("deployments:detail", kwargs={"pk": sibling.pk})
        assert (sibling.name, sibling.cluster, sibling.sibling_of) == ("fraud-us-east", plain, deployment)
        assert client_for(engineer).post(f"{URL}{deployment.pk}/replicate/", {"cluster": "us-east"},
                                         format="json").status_code == 409
        sibling = _drive(sibling)
        assert sibling.status == "healthy", sibling.status_message
        assert second.call(lambda k: k.get("apps/v1/deployments", NS, "fraud-us-east-r1")) is not None

        for target in (deployment, sibling):
            deployment_deploy(actor=engineer, deployment=target, model_version=versions[1], strategy=CANARY_10)
            _drive(target)
        deployment.refresh_from_db()
        sibling.refresh_from_db()
        assert deployment.served_traffic["split"] == {"1": 90, "2": 10}
        assert sibling.served_traffic["split"] == {"1": 50, "2": 50} and not sibling.served_traffic["exact"]

        data = client_for(engineer).get(f"{URL}{deployment.pk}/").json()
        assert [(s["name"], s["cluster"], s["served_traffic"]["split"]) for s in data["siblings"]] == [
            ("fraud-us-east", "us-east", {"1": 50, "2": 50})]
        page = client.get(reverse("deployments:detail", kwargs={"pk": sibling.pk})).content.decode()
        assert 'id="siblings"' in page and "eu-west" in page and "r1 90 %, r2 10 %" in page
    finally:
        second.stop()


def test_wizard_review_and_clusters_page_show_the_mechanism(kube_server, engineer, team, staging, versions,  # noqa: F811
                                                              client):
    from apps.deployments.models import DeploymentDraft

    cluster = kube_cluster(url=kube_server.url, team=team, name="plain")
    deployment = _drive(deployment_create(actor=engineer, team=team, name="fraud", model_version=versions[0],
                                          environment=staging, cluster=cluster, resources=ONE_POD))
    draft = DeploymentDraft.objects.create(team=team, created_by=engineer, step=5, data={
        "name": deployment.name, "model_version": versions[1].pk, "environment": "staging", "cluster": "plain",
        "resources": ONE_POD, "strategy": CANARY_10})
    client.force_login(engineer)
    page = client.get(reverse("deployments:wizard", kwargs={"draft_id": draft.pk, "step": 5})).content.decode()
    assert 'class="error traffic-warning"' in page and "cannot be met with 1 replica(s)" in page
    assert "approximate: r1 1 of 2 pods ≈ 50 %, r2 1 of 2 pods ≈ 50 %" in page
    assert "Mechanism: replica-ratio" in page

    admin = type(engineer).objects.get(username="cluster-admin")
    client.force_login(admin)
    kube_server.call(lambda k: k.set_gateway_api(True))
    response = client.post(reverse("deployments:clusters"), {"action": "gateway", "cluster": cluster.pk,
                                                             "gateway": "gateways/public"})
    assert response.status_code == 302
    client.post(reverse("deployments:clusters"), {"action": "test", "cluster": cluster.pk})
    cluster.refresh_from_db()
    assert (cluster.gateway_namespace, cluster.gateway_name, cluster.gateway_api_available) == ("gateways", "public",
                                                                                                True)
    assert "Gateway API served" in client.get(reverse("deployments:clusters")).content.decode()
    client.force_login(engineer)
    page = client.get(reverse("deployments:wizard", kwargs={"draft_id": draft.pk, "step": 5})).content.decode()
    assert "traffic-warning" not in page and "exact: weighted backendRefs on HTTPRoute, Gateway gateways/public" in page
