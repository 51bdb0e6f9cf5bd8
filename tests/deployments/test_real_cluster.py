"""The same flow against a real cluster, by hand (skipped in CI and wherever KUBECONFIG is not set):

    KUBECONFIG=~/.kube/config DEPLOY_TEST_NAMESPACE=controlplane-test \\
        .venv/bin/pytest tests/deployments/test_real_cluster.py -v

The namespace must exist and the kubeconfig's user may apply Deployments, Services and HPAs there.
Model servers need the MLflow image and a tracking server the cluster can reach, so readiness is not
asserted; the test checks connection, discovery, server-side apply and drift detection, then cleans up.
"""
import os
from pathlib import Path

import pytest

from apps.deployments.rollout import reconcile_one
from apps.deployments.services import cluster_create, cluster_test_connection, deployment_create
from tests.deployments.factories import environment, model_version

pytestmark = pytest.mark.skipif(not os.environ.get("KUBECONFIG") or os.environ.get("CI"),
                                reason="needs a real cluster: run by hand with KUBECONFIG=...")


def test_real_cluster_apply_and_observe(engineer, team, staging, platform_admin):
    from apps.deployments.models import ClusterNamespace
    from apps.deployments.drivers import driver_for

    namespace = os.environ.get("DEPLOY_TEST_NAMESPACE", "controlplane-test")
    kubeconfig = Path(os.environ["KUBECONFIG"].split(":")[0]).expanduser().read_text()
    cluster = cluster_create(actor=platform_admin, name="real", kind="kubernetes", kubeconfig=kubeconfig)
    cluster = cluster_test_connection(actor=platform_admin, cluster=cluster)
    assert cluster.last_check_ok, cluster.last_check_message
    ClusterNamespace.objects.create(cluster=cluster, team=team, environment=environment("staging"), namespace=namespace)
    deployment = deployment_create(actor=engineer, team=team, name="cp-real-test", model_version=model_version(team),
                                   environment=staging, cluster=cluster,
                                   resources={"cpu": "100m", "memory": "128Mi"})
    driver = driver_for(cluster)
    revision = deployment.current_revision
    try:
        driver.apply(deployment=deployment, revision=revision, weight=100)
        for manifest in revision.manifests:
            if manifest["kind"] != "Service":
                assert driver.driver.read(manifest) is not None
        assert reconcile_one(deployment_id=deployment.pk)["missing"] == []
    finally:
        import kubernetes

        api = driver.client()
        for manifest in revision.manifests:
            name = manifest["metadata"]["name"]
            try:
                if manifest["kind"] == "Deployment":
                    kubernetes.client.AppsV1Api(api).delete_namespaced_deployment(name, namespace)
                elif manifest["kind"] == "InferenceService":
                    kubernetes.client.CustomObjectsApi(api).delete_namespaced_custom_object(
                        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name)
            except kubernetes.client.ApiException:
                pass
