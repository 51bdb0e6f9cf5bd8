"""SSRF guard: webhooks and cluster API URLs never reach loopback, private, link-local or metadata addresses
unless a platform admin allow-lists the range; redirects are not followed; kubeconfig plugins never run."""
import json

import pytest

from apps.audit.models import AuditEvent
from apps.core import crypto
from apps.deployments.models import Cluster
from apps.teams.models import WebhookDelivery, WebhookEndpoint, WebhookNotification
from apps.teams.tasks import deliver_webhook_task
from tests.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/deployments/clusters/"
NETWORKS = "/api/v1/platform/allowed-networks/"


@pytest.fixture
def no_allow_list(settings):
    """Production's default: no range allowed (local development and the other tests allow loopback)."""
    settings.SSRF_ALLOWED_CIDRS = []


def deliver(endpoint, key="k"):
    return deliver_webhook_task.apply(kwargs={"endpoint_id": endpoint.pk, "event": "registry.approve",
                                              "body": {"text": "hi"}, "dedup_key": key}, throw=False)


@pytest.mark.parametrize("url, refused", [
    ("http://127.0.0.1:5000/api/2.0/mlflow/experiments/search", "127.0.0.1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ("http://localhost:5000/", "localhost (it resolves to 127.0.0.1): 127.0.0.1 is a loopback address"),
    ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254 is a cloud metadata address"),
    ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("http://[::ffff:127.0.0.1]/hook", "127.0.0.1 is a loopback address"),
])
def test_webhook_to_an_internal_address_is_refused_at_save(client_for, team, team_admin, no_allow_list, url, refused):
    response = client_for(team_admin).post("/api/v1/webhooks/", {"team": team.slug, "name": "x", "url": url},
                                           format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert refused in error["message"] and "SSRF_ALLOWED_CIDRS" in error["message"]
    assert error["fields"] == {"url": ["Destination not allowed."]}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivery_to_an_internal_address_is_refused_and_logged(http_receiver, no_allow_list, host):
    # Saved before the guard (or its allow-list) changed: the check at send time is the one that counts.
    endpoint = WebhookEndpointFactory(url=http_receiver.url.replace("127.0.0.1", host))
    assert deliver(endpoint).get()["result"] == "refused"
    assert http_receiver.requests == []
    row = WebhookDelivery.objects.get(endpoint=endpoint)
    assert row.outcome == "refused" and row.status_code is None and "is a loopback address" in row.error
    assert WebhookNotification.objects.get(delivery_key="k").status == "refused"  # final: not retried


def test_redirect_is_not_followed(http_receiver):
    http_receiver.status, http_receiver.response_headers = 302, {"Location": "http://169.254.169.254/latest/"}
    endpoint = WebhookEndpointFactory(url=http_receiver.url)
    assert deliver(endpoint).get()["result"] == "refused"
    assert len(http_receiver.requests) == 1
    row = WebhookDelivery.objects.get(endpoint=endpoint)
    assert row.status_code == 302 and "redirects are not followed" in row.error


def test_allow_listed_cidr_is_accepted(settings, client_for, team, team_admin, http_receiver):
    settings.SSRF_ALLOWED_CIDRS = ["127.0.0.1/32"]
    created = client_for(team_admin).post("/api/v1/webhooks/", {"team": team.slug, "name": "local",
                                                                "url": http_receiver.url}, format="json")
    assert created.status_code == 201, created.json()
    assert deliver(WebhookEndpoint.objects.get(pk=created.json()["id"])).get()["result"] == "delivered"
    assert len(http_receiver.requests) == 1


def test_platform_admin_allow_lists_a_range_at_run_time(no_allow_list, client_for, platform_admin, team, team_admin,
                                                        http_receiver):
    admin_api, team_api = client_for(platform_admin), client_for(team_admin)
    body = {"team": team.slug, "name": "relay", "url": http_receiver.url}
    assert team_api.post("/api/v1/webhooks/", body, format="json").status_code == 400
    assert team_api.post(NETWORKS, {"cidr": "127.0.0.1/32", "reason": "relay"}, format="json").status_code == 403
    invalid = admin_api.post(NETWORKS, {"cidr": "127.0.0.300", "reason": "relay"}, format="json")
    assert invalid.status_code == 400 and "is not an IP network" in invalid.json()["error"]["message"]
    network = admin_api.post(NETWORKS, {"cidr": "127.0.0.1", "reason": "the on-premises relay"}, format="json")
    assert network.status_code == 201 and network.json()["cidr"] == "127.0.0.1/32"

    created = team_api.post("/api/v1/webhooks/", body, format="json")
    assert created.status_code == 201, created.json()
    endpoint = WebhookEndpoint.objects.get(pk=created.json()["id"])
    assert deliver(endpoint, key="k1").get()["result"] == "delivered"
    assert admin_api.delete(f"{NETWORKS}{network.json()['id']}/").status_code == 204
    assert deliver(endpoint, key="k2").get()["result"] == "refused"
    assert list(AuditEvent.objects.filter(action__startswith="ssrf.").order_by("id").values_list("action", flat=True)) \
        == ["ssrf.network_allow", "ssrf.network_remove"]


def test_metadata_address_needs_naming_alone_in_the_allow_list(settings, client_for, team, team_admin):
    settings.SSRF_ALLOWED_CIDRS = ["169.254.0.0/16"]
    response = client_for(team_admin).post("/api/v1/webhooks/", {"team": team.slug, "name": "x",
                                                                 "url": "http://169.254.169.254/"}, format="json")
    assert response.status_code == 400 and "cloud metadata address" in response.json()["error"]["message"]


def test_cluster_api_url_to_a_metadata_address_is_refused(client_for, platform_admin):
    response = client_for(platform_admin).post(CLUSTERS, {"name": "imds", "kind": "kubernetes", "token": "t",
                                                          "api_url": "http://169.254.169.254"}, format="json")
    assert response.status_code == 400
    assert "169.254.169.254 is a cloud metadata address" in response.json()["error"]["message"]
    assert not Cluster.objects.filter(name="imds").exists()


def test_cluster_saved_before_the_guard_is_refused_at_use(client_for, platform_admin):
    cluster = Cluster.objects.create(name="old", kind="kubernetes", api_url="http://169.254.169.254",
                                     credentials_kind="token",
                                     credentials_encrypted=crypto.encrypt(json.dumps({"token": "t", "ca_cert": ""})))
    data = client_for(platform_admin).post(f"{CLUSTERS}{cluster.pk}/test-connection/").json()
    assert data["last_check_ok"] is False
    assert "Refused to connect to cluster old" in data["last_check_message"]


def exec_kubeconfig(marker):
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://k8s.example.test"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                  "command": "touch", "args": [str(marker)]}}}],
    })


def test_kubeconfig_with_exec_is_refused_at_save_and_never_runs_at_use(settings, client_for, platform_admin, tmp_path):
    marker = tmp_path / "exec-ran"
    client = client_for(platform_admin)
    response = client.post(CLUSTERS, {"name": "exec", "kind": "kubernetes", "kubeconfig": exec_kubeconfig(marker)},
                           format="json")
    assert response.status_code == 400
    assert "uses 'exec', which would run a command" in response.json()["error"]["message"]
    assert response.json()["error"]["fields"] == {"kubeconfig": ["'exec' is not allowed."]}

    settings.KUBECONFIG_ALLOW_EXEC = True  # a platform admin allowed plugins, then took it back
    assert client.post(CLUSTERS, {"name": "exec", "kind": "kubernetes", "kubeconfig": exec_kubeconfig(marker)},
                       format="json").status_code == 201
    settings.KUBECONFIG_ALLOW_EXEC = False
    data = client.post(f"{CLUSTERS}{Cluster.objects.get(name='exec').pk}/test-connection/").json()
    assert data["last_check_ok"] is False and "uses 'exec'" in data["last_check_message"]
    assert not marker.exists()


def test_kubeconfig_auth_provider_is_refused(client_for, platform_admin, tmp_path):
    config = json.loads(exec_kubeconfig(tmp_path / "x"))
    config["users"][0]["user"] = {"auth-provider": {"name": "gcp"}}
    response = client_for(platform_admin).post(CLUSTERS, {"name": "gcp", "kind": "kubernetes",
                                                          "kubeconfig": json.dumps(config)}, format="json")
    assert response.status_code == 400 and "uses 'auth-provider'" in response.json()["error"]["message"]
