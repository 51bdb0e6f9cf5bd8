"""NVML sample ingest: node tokens, COPY into monthly partitions, idempotent batches, counted rejections."""
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.costs.ingest import samples_ingest
from apps.costs.models import GpuDevice, SampleBatch
from apps.costs.services import node_token_create

from . import factories as f

pytestmark = pytest.mark.django_db


def sample(ts=None, **overrides):
    return {"ts": ts if ts is not None else time.time(), "gpu_index": 0, "gpu_uuid": "GPU-abc", "gpu_name": "A100",
            "util": 42.5, "mem_used_mb": 2048, "mem_total_mb": 81920, "power_w": 210.0,
            "processes": [{"pid": 123, "used_mb": 2000}], **overrides}


def stored(batch_id=None) -> int:
    with connection.cursor() as cursor:
        if batch_id:
            cursor.execute("SELECT count(*) FROM costs_gpusample WHERE batch_id = %s", [str(batch_id)])
        else:
            cursor.execute("SELECT count(*) FROM costs_gpusample")
        return cursor.fetchone()[0]


@pytest.fixture
def agent(platform_admin):
    f.cluster()
    _, plaintext = node_token_create(actor=platform_admin, cluster="local", node="gpu-node-1", gpu_count=2)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_agent_batch_is_stored_once_even_when_posted_twice(agent):
    body = {"batch_id": str(uuid.uuid4()), "samples": [sample(), sample(gpu_index=1)]}
    first = agent.post("/api/v1/costs/samples/", body, format="json")
    assert first.status_code == 201, first.json()
    assert first.json() == {"batch_id": body["batch_id"], "duplicate": False, "accepted": 2, "rejected_future": 0,
                            "rejected_past": 0}
    again = agent.post("/api/v1/costs/samples/", body, format="json")
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["accepted"] == 2
    assert stored(body["batch_id"]) == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT node, cluster_id, gpu_index, util_gpu, mem_used_mb, power_w FROM costs_gpusample "
                       "ORDER BY gpu_index")
        assert cursor.fetchall() == [("gpu-node-1", f.cluster().pk, 0, 42.5, 2048.0, 210.0),
                                     ("gpu-node-1", f.cluster().pk, 1, 42.5, 2048.0, 210.0)]
        cursor.execute("SELECT node, gpu_index, pid, used_mb FROM costs_gpuprocess ORDER BY gpu_index")
        assert cursor.fetchall() == [("gpu-node-1", 0, 123, 2000.0), ("gpu-node-1", 1, 123, 2000.0)]
    # The GPU's identity is kept once per node and index, not on every sample.
    assert list(GpuDevice.objects.values_list("node", "gpu_index", "uuid", "name")) == [
        ("gpu-node-1", 0, "GPU-abc", "A100"), ("gpu-node-1", 1, "GPU-abc", "A100")]


def test_future_and_far_past_samples_are_counted_not_stored(agent):
    now = time.time()
    body = {"batch_id": str(uuid.uuid4()), "samples": [
        sample(now), sample(now + 3600), sample(now - 90 * 86400), sample(now - 91 * 86400)]}
    response = agent.post("/api/v1/costs/samples/", body, format="json")
    assert response.json() | {"batch_id": None} == {"batch_id": None, "duplicate": False, "accepted": 1,
                                                    "rejected_future": 1, "rejected_past": 2}
    batch = SampleBatch.objects.get(batch_id=body["batch_id"])
    assert (batch.accepted, batch.rejected_future, batch.rejected_past) == (1, 1, 2)
    assert stored(body["batch_id"]) == 1


@pytest.mark.parametrize("bad,message", [
    ({"util": 130}, "Sample 1: util: Expected `float` <= 100.0."),
    ({"ts": "yesterday"}, "Sample 1: ts must be epoch seconds or an ISO 8601 time"),
    ({"gpu_index": -1}, "Sample 1: gpu_index: Expected `int` >= 0."),
    ({"mem_used_mb": "lots"}, "Sample 1: mem_used_mb: Expected `float`, got `str`."),
    ({"power_w": -5}, "Sample 1: power_w: Expected `float` >= 0.0."),
    ({"util": True}, "Sample 1: util: Expected `float`, got `bool`."),
    ({"gpu_index": 10 ** 30}, "Sample 1: gpu_index: Expected `int` <= 1023."),
    ({"processes": "many"}, "Sample 1: processes: Expected `array | null`, got `str`."),
    ({"processes": [{"used_mb": 3}]}, "Sample 1: processes: Object missing required field `pid`."),
    ({"mem_used_mb": 90000}, "Sample 1: mem_used_mb (90000) is more than mem_total_mb (81920)."),
])
def test_a_malformed_sample_refuses_the_batch_and_stores_nothing(agent, bad, message):
    body = {"batch_id": str(uuid.uuid4()), "samples": [sample(), sample(**bad)]}
    response = agent.post("/api/v1/costs/samples/", body, format="json")
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert stored(body["batch_id"]) == 0 and not SampleBatch.objects.exists()


def test_a_sample_without_required_fields(agent):
    body = {"batch_id": str(uuid.uuid4()), "samples": [sample(), {"ts": time.time(), "gpu_index": 0}]}
    response = agent.post("/api/v1/costs/samples/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Sample 1: Object missing required field `util`."


def test_iso_timestamps_are_accepted_too(agent):
    now = datetime.now(timezone.utc)
    body = {"batch_id": str(uuid.uuid4()), "samples": [sample(now.isoformat()), sample(now.isoformat()[:-6] + "Z")]}
    response = agent.post("/api/v1/costs/samples/", body, format="json")
    assert response.status_code == 201 and response.json()["accepted"] == 2


def test_bad_batch_id_and_unknown_fields(agent):
    response = agent.post("/api/v1/costs/samples/", {"batch_id": "x", "samples": []}, format="json")
    assert response.status_code == 400 and "batch_id" in response.json()["error"]["fields"]
    response = agent.post("/api/v1/costs/samples/", {"batch_id": str(uuid.uuid4()), "samples": [], "gpu": 1},
                          format="json")
    assert response.status_code == 400 and "unknown field `gpu`" in response.json()["error"]["message"]


def test_wrong_or_revoked_node_token_is_401(platform_admin):
    f.cluster()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nt_deadbeef_nope")
    response = client.post("/api/v1/costs/samples/", {"batch_id": str(uuid.uuid4()), "samples": []}, format="json")
    assert response.status_code == 401 and "node token" in response.json()["error"]["message"]


def test_a_node_token_speaks_only_for_its_node(agent):
    response = agent.post("/api/v1/costs/samples/", {"batch_id": str(uuid.uuid4()), "node": "other-node",
                                                     "samples": [sample()]}, format="json")
    assert response.status_code == 403 and "belongs to node 'gpu-node-1'" in response.json()["error"]["message"]


def test_monthly_partitions_are_created_on_demand(db):
    cluster = f.cluster()
    now = datetime.now(timezone.utc)
    last_month = now.replace(day=1) - timedelta(days=1)
    result = samples_ingest(cluster=cluster, node="n", batch_id=uuid.uuid4(),
                            samples=[sample(last_month.timestamp()), sample(now.timestamp())])
    assert result.accepted == 2
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'costs_gpusample'")
        partitions = {row[0] for row in cursor.fetchall()}
    assert {f"costs_gpusample_y{last_month:%Y}m{last_month:%m}", f"costs_gpusample_y{now:%Y}m{now:%m}"} <= partitions


def test_non_finite_numbers_are_refused(db):
    from apps.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="Sample 0: util: Expected `float` >= 0.0"):
        samples_ingest(cluster=f.cluster(), node="n", batch_id=uuid.uuid4(), samples=[sample(util=float("nan"))])
    with pytest.raises(InvalidInput, match="Sample 0: mem_total_mb: Expected `float` <= "):
        samples_ingest(cluster=f.cluster(), node="n", batch_id=uuid.uuid4(),
                       samples=[sample(mem_total_mb=float("inf"))])


def test_samples_for_a_gpu_index_the_node_did_not_register_are_refused(agent):
    body = {"batch_id": str(uuid.uuid4()), "samples": [sample(), sample(gpu_index=2)]}
    response = agent.post("/api/v1/costs/samples/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Node 'gpu-node-1' registered 2 GPU(s), indexes 0..1; the samples name GPU index 2. "
        "Register the node again with its GPU count.")
    assert stored() == 0 and not SampleBatch.objects.exists()


def test_an_admin_cannot_post_samples_for_a_node_nobody_registered(platform_admin, client_for):
    f.cluster()
    body = {"batch_id": str(uuid.uuid4()), "cluster": "local", "node": "ghost-node", "samples": [sample()]}
    response = client_for(platform_admin).post("/api/v1/costs/samples/", body, format="json")
    assert response.status_code == 400
    assert "Node 'ghost-node' is not registered on cluster 'local'" in response.json()["error"]["message"]
    assert stored() == 0 and not SampleBatch.objects.exists()


def test_nodes_are_registered_listed_and_revoked_through_the_api(platform_admin, client_for):
    from apps.audit.models import AuditEvent

    f.cluster()
    admin = client_for(platform_admin)
    created = admin.post("/api/v1/costs/node-tokens/", {"cluster": "local", "node": "gpu-node-9", "gpu_count": 4},
                         format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["token"].startswith("nt_") and body["gpu_count"] == 4 and body["revoked_at"] is None
    listed = admin.get("/api/v1/costs/node-tokens/").json()["results"]
    assert [(row["node"], row["gpu_count"]) for row in listed] == [("gpu-node-9", 4)]
    assert all("token" not in row and "secret_hash" not in row for row in listed)  # shown once only

    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    post = {"batch_id": str(uuid.uuid4()), "samples": [sample(gpu_index=3)]}
    assert agent.post("/api/v1/costs/samples/", post, format="json").status_code == 201

    revoked = admin.post(f"/api/v1/costs/node-tokens/{body['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    again = admin.post(f"/api/v1/costs/node-tokens/{body['id']}/revoke/")
    assert again.status_code == 409 and "already revoked" in again.json()["error"]["message"]
    refused = agent.post("/api/v1/costs/samples/", {"batch_id": str(uuid.uuid4()), "samples": [sample()]},
                         format="json")
    assert refused.status_code == 401
    assert list(AuditEvent.objects.filter(action__startswith="costs.node_token").values_list("action", flat=True)
                .order_by("id")) == ["costs.node_token.create", "costs.node_token.revoke"]


@pytest.mark.parametrize("gpu_count", [-1, 1025, "two"])
def test_node_registration_bad_gpu_count(platform_admin, client_for, gpu_count):
    f.cluster()
    response = client_for(platform_admin).post("/api/v1/costs/node-tokens/",
                                               {"cluster": "local", "node": "n", "gpu_count": gpu_count}, format="json")
    assert response.status_code == 400 and "gpu_count" in response.json()["error"]["fields"]
