"""Cluster credentials: encrypted at rest, never returned or audited in clear, rotatable; test connection."""
import pytest
from cryptography.fernet import Fernet

from apps.audit.models import AuditEvent
from apps.deployments import crypto
from apps.deployments.models import Cluster
from apps.deployments.services import cluster_credentials, credentials_rotate
from tests.harness.kube_server import kube_server  # noqa: F401

URL = "/api/v1/deployments/clusters/"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.very-secret-token"


def test_credentials_are_encrypted_and_never_leave(client_for, platform_admin):
    client = client_for(platform_admin)
    response = client.post(URL, {"name": "prod-eu", "kind": "kubernetes", "api_url": "https://k8s.example.test",
                                 "token": TOKEN, "ca_cert": "-----BEGIN CERTIFICATE-----"}, format="json")
    assert response.status_code == 201, response.json()
    assert TOKEN not in response.content.decode()
    assert response.json()["has_credentials"] is True and response.json()["credentials_kind"] == "token"
    cluster = Cluster.objects.get(name="prod-eu")
    assert TOKEN.encode() not in bytes(cluster.credentials_encrypted)
    assert cluster_credentials(cluster=cluster)["token"] == TOKEN
    assert TOKEN not in client.get(f"{URL}{cluster.pk}/").content.decode()
    events = AuditEvent.objects.filter(object_type="deployments.cluster")
    assert events.exists() and all(TOKEN not in str(e.changes) for e in events)


def test_kubeconfig_must_be_valid_and_a_cluster_needs_credentials(client_for, platform_admin):
    client = client_for(platform_admin)
    response = client.post(URL, {"name": "x", "kind": "kubernetes", "kubeconfig": "clusters: [unclosed"}, format="json")
    assert response.status_code == 400 and "not valid YAML" in response.json()["error"]["message"]
    response = client.post(URL, {"name": "x", "kind": "kubernetes", "api_url": "https://k.example.test"}, format="json")
    assert response.status_code == 400 and "needs credentials" in response.json()["error"]["message"]


def test_key_rotation_with_multifernet(settings, platform_admin):
    from apps.deployments.services import cluster_create

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONTROLPLANE_FERNET_KEYS = [old]
    cluster = cluster_create(actor=platform_admin, name="k", kind="kubernetes", api_url="https://k.example.test",
                             token=TOKEN)
    settings.CONTROLPLANE_FERNET_KEYS = [new, old]
    assert credentials_rotate() == 1
    settings.CONTROLPLANE_FERNET_KEYS = [new]
    cluster.refresh_from_db()
    assert cluster_credentials(cluster=cluster)["token"] == TOKEN
    settings.CONTROLPLANE_FERNET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        crypto.decrypt(cluster.credentials_encrypted)


def test_test_connection_reports_version_and_kserve(client_for, platform_admin, kube_server):  # noqa: F811
    client = client_for(platform_admin)
    cluster = client.post(URL, {"name": "kind", "kind": "kubernetes", "api_url": kube_server.url, "token": TOKEN},
                          format="json").json()
    kube_server.kmock.set_kserve(True)
    data = client.post(f"{URL}{cluster['id']}/test-connection/").json()
    assert data["last_check_ok"] is True and data["kserve_available"] is True, data["last_check_message"]
    assert "v1.26" in data["last_check_message"]
    # The token reached the API server as a bearer token (and nowhere else).
    assert any(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in kube_server.kmock._requests)


def test_unreachable_cluster_check_fails_clearly(client_for, platform_admin):
    from tests.harness.mlflow_server import free_port

    client = client_for(platform_admin)
    cluster = client.post(URL, {"name": "gone", "kind": "kubernetes", "api_url": f"http://127.0.0.1:{free_port()}",
                                "token": TOKEN}, format="json").json()
    data = client.post(f"{URL}{cluster['id']}/test-connection/").json()
    assert data["last_check_ok"] is False and "unreachable" in data["last_check_message"]
