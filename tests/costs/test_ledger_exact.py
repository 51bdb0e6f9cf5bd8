"""The ledger costed exactly: a hand-computed scenario (two teams on two nodes with different utilisation, a Job
and a deployment with CPU, memory and GPUs, a redeploy to CPU-only, a GPU without telemetry) checked to the cent
against figures computed here from first principles; parallel revision changes; the nightly open-interval check."""
import threading
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.costs.ingest import samples_ingest
from apps.costs.ledger import deployment_interval_open, intervals_stop_for_revision, open_intervals_check
from apps.costs.models import GpuAllocation, ResourceRate
from apps.costs.rollup import rollup_window
from apps.costs.selectors import cost_report
from apps.costs.services import allocation_start, allocations_stop_for, node_token_create
from apps.deployments.choices import JobStatus
from apps.deployments.models import Job

from tests.deployments.factories import deployment_in

from . import factories as f

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
T0 = NOW - timedelta(days=2)
H = timedelta(hours=1)
CENT = Decimal("0.01")

GPU_PRICE = Decimal("2.00")  # per GPU-hour
CPU_RATE = Decimal("0.04")  # per core-hour
MEMORY_RATE = Decimal("0.005")  # per GiB-hour
# Measured utilisation per node and GPU index (samples alternate around these means, so the average is exact).
UTIL = {("node-a", 0): Decimal(25), ("node-b", 1): Decimal(60), ("node-b", 2): Decimal(40)}


def _samples(node: str) -> list[dict]:
    out = []
    for step in range(6 * 6):  # every 10 minutes for six hours
        for (sample_node, index), mean in UTIL.items():
            if sample_node == node:
                util = float(mean) + (15 if step % 2 else -15)
                out.append({"ts": (T0 + timedelta(minutes=10 * step)).timestamp(), "gpu_index": index,
                            "util": util, "mem_used_mb": 1000, "mem_total_mb": 80000})
    return out


@pytest.mark.django_db
def test_hand_computed_scenario_to_the_cent(team, other_team, platform_admin, client):
    gtype = f.gpu_type(price=str(GPU_PRICE), capacity=0)
    cluster = gtype.cluster
    ResourceRate.objects.create(cluster=cluster, cpu_core_hour=CPU_RATE, memory_gb_hour=MEMORY_RATE,
                                effective_from=T0 - timedelta(days=1))
    for node in ("node-a", "node-b"):
        node_token_create(actor=platform_admin, cluster=cluster, node=node, gpu_count=4)
        samples_ingest(cluster=cluster, node=node, batch_id=uuid.uuid4(), samples=_samples(node), now=NOW)

    # fraud: deployment 501 serves 1 GPU (node-a, GPU 0) with 1 CPU and 2 GiB for 3 h, then is redeployed CPU-only
    # (1 CPU, 2 GiB) for 2 h: the GPU interval closes at the redeploy.
    allocation_start(team=team, cluster=cluster, gpu_type=gtype, gpu_count=1, started_at=T0, deployment_id=501,
                     revision_id=1, node="node-a", gpu_indexes=[0], cpu_cores=1, memory_gb=2)
    allocations_stop_for(deployment_id=501, stopped_at=T0 + 3 * H)
    cpu_only = allocation_start(team=team, cluster=cluster, gpu_type="", gpu_count=0, started_at=T0 + 3 * H,
                                deployment_id=501, revision_id=2, cpu_cores=1, memory_gb=2)
    allocations_stop_for(deployment_id=501, stopped_at=T0 + 5 * H)
    # search: Job 601 holds 2 GPUs (node-b, GPUs 1 and 2) with 4 CPUs and 16 GiB from T0+1h to T0+3h.
    allocation_start(team=other_team, cluster=cluster, gpu_type=gtype, gpu_count=2, started_at=T0 + H, job_id=601,
                     node="node-b", gpu_indexes=[1, 2], cpu_cores=4, memory_gb=16)
    allocations_stop_for(job_id=601, stopped_at=T0 + 3 * H)
    # A pod nobody labelled, on node-b's GPU 3, which has no samples: no idle figure, none borrowed.
    unlabelled = allocation_start(team=None, cluster=cluster, gpu_type=gtype, gpu_count=1, started_at=T0,
                                  node="node-b", gpu_indexes=[3], external_uid="pod-x", source="kubernetes")
    GpuAllocation.objects.filter(pk=unlabelled.pk).update(stopped_at=T0 + 2 * H)
    assert GpuAllocation.objects.get(pk=cpu_only.pk).gpu_type is None

    rollup_window(start=T0, end=T0 + 6 * H, now=NOW)
    report = {r["key"]: r for r in cost_report(user=platform_admin, start=T0.date(), end=(T0 + 6 * H).date())}

    def expected(gpu_hours, cpu_core_hours, memory_gib_hours, util):
        gpu_cost = gpu_hours * GPU_PRICE
        other = cpu_core_hours * CPU_RATE + memory_gib_hours * MEMORY_RATE
        idle_hours = gpu_hours * (1 - util / 100) if util is not None else None
        return {"gpu_hours": gpu_hours.quantize(Decimal("0.001")), "gpu_cost": gpu_cost.quantize(CENT),
                "other_cost": other.quantize(CENT),
                "idle_gpu_hours": idle_hours.quantize(Decimal("0.001")) if idle_hours is not None else None,
                "idle_cost": (idle_hours * GPU_PRICE).quantize(CENT) if idle_hours is not None else None,
                "total_cost": (gpu_cost + other).quantize(CENT)}

    # fraud: 3 GPU-hours at its own GPU's 25 % (not the cluster's mean); 5 h of 1 CPU and 2 GiB.
    fraud = expected(Decimal(3), Decimal(5), Decimal(10), UTIL[("node-a", 0)])
    # search: 2 GPUs × 2 h at the mean of its two GPUs (60 % and 40 %); 2 h of 4 CPUs and 16 GiB.
    search = expected(Decimal(4), Decimal(8), Decimal(32), (UTIL[("node-b", 1)] + UTIL[("node-b", 2)]) / 2)
    unattributed = expected(Decimal(2), Decimal(0), Decimal(0), None)
    assert fraud == {"gpu_hours": Decimal("3.000"), "gpu_cost": Decimal("6.00"), "other_cost": Decimal("0.25"),
                     "idle_gpu_hours": Decimal("2.250"), "idle_cost": Decimal("4.50"), "total_cost": Decimal("6.25")}
    for key, want in (("fraud", fraud), ("search", search), ("unattributed", unattributed)):
        assert {k: report[key][k] for k in want} == want, key
    assert set(report) == {"fraud", "search", "unattributed"}  # no capacity declared: no unallocated line

    # Per deployment, the redeploy's CPU-only part is costed with the GPU part of the same deployment.
    by_deployment = {r["key"]: r for r in cost_report(user=platform_admin, start=T0.date(),
                                                      end=(T0 + 6 * H).date(), group_by="deployment")}
    [row] = [r for r in by_deployment.values() if r["deployment"] and "501" in r["deployment"]]
    assert (row["gpu_cost"], row["other_cost"], row["total_cost"]) == (Decimal("6.00"), Decimal("0.25"),
                                                                       Decimal("6.25"))

    # The Costs page says why the unattributed row has no idle figure.
    client.force_login(platform_admin)
    page = client.get("/costs/", {"month": f"{T0:%Y-%m}"}).content.decode()
    unattributed_row = page.split("Unattributed", 1)[1].split("</tr>", 1)[0]
    assert "no telemetry" in unattributed_row and "4.50" in page


@pytest.mark.django_db
def test_an_allocation_without_node_or_gpus_has_no_idle_figure(team, platform_admin, client_for):
    gtype = f.gpu_type(price="2", capacity=0)
    node_token_create(actor=platform_admin, cluster=gtype.cluster, node="node-a", gpu_count=4)
    samples_ingest(cluster=gtype.cluster, node="node-a", batch_id=uuid.uuid4(), samples=_samples("node-a"), now=NOW)
    allocation_start(team=team, cluster=gtype.cluster, gpu_type=gtype, gpu_count=1, started_at=T0, node="node-a")
    rollup_window(start=T0, end=T0 + 2 * H, now=T0 + 2 * H)
    [row] = cost_report(user=platform_admin, start=T0.date(), end=(T0 + 2 * H).date())
    assert row["gpu_cost"] == Decimal("4.00") and row["idle_cost"] is None  # node known, GPU not: no telemetry
    [listed] = client_for(platform_admin).get("/api/v1/costs/allocations/").json()["results"]
    assert (listed["node"], listed["gpu_indexes"], listed["mig_instance"]) == ("node-a", [], "")


@pytest.mark.django_db(transaction=True)
def test_parallel_revision_changes_leave_one_interval_open_and_close_each_once(team):
    gtype = f.gpu_type(price="2", capacity=0)
    revisions, errors = list(range(1, 9)), []
    barrier = threading.Barrier(len(revisions))

    def serve(revision_id: int) -> None:
        try:
            barrier.wait()
            deployment_interval_open(deployment_id=777, revision_id=revision_id, team=team, cluster=gtype.cluster,
                                     gpu_type=gtype, gpu_count=1, cpu_cores=1, memory_gb=2)
            if revision_id % 3 == 0:  # some revisions are torn down at once, racing the next revision's start
                intervals_stop_for_revision(revision_id=revision_id)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=serve, args=(r,)) for r in revisions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    intervals = list(GpuAllocation.objects.filter(deployment_id=777).order_by("started_at", "pk"))
    assert sorted(i.revision_id for i in intervals) == revisions  # one interval per revision, none lost
    assert sum(i.stopped_at is None for i in intervals) <= 1
    for earlier, later in zip(intervals, intervals[1:]):  # closed once, before the next opened: no overlap
        assert earlier.stopped_at is not None and earlier.stopped_at <= later.started_at
    last = intervals[-1]
    assert (last.stopped_at is None) == (last.revision_id % 3 != 0)


@pytest.mark.django_db
def test_nightly_check_reports_intervals_open_without_a_running_workload(team, platform_admin):
    gtype = f.gpu_type(price="2", capacity=0)
    cluster = gtype.cluster
    jobs = {status: Job.objects.create(team=team, cluster=cluster, namespace="ml", name=f"train-{status}",
                                       image="trainer:1", status=status)
            for status in (JobStatus.RUNNING, JobStatus.SUCCEEDED)}
    for job in jobs.values():
        allocation_start(team=team, cluster=cluster, gpu_type=gtype, gpu_count=1, job_id=job.pk, started_at=T0)
    orphan = GpuAllocation.objects.get(job_id=jobs[JobStatus.SUCCEEDED].pk)
    deployment = deployment_in(team)  # r2 serves, r1 was replaced
    for revision in deployment.revisions.all():
        allocation_start(team=team, cluster=cluster, gpu_type="", gpu_count=0, deployment_id=deployment.pk,
                         revision_id=revision.pk, started_at=T0)
    replaced = GpuAllocation.objects.get(revision_id=deployment.revisions.get(number=1).pk)

    found = open_intervals_check(now=NOW)
    assert sorted((i["allocation"], i["reason"]) for i in found) == [
        (orphan.pk, "job train-succeeded is succeeded"),
        (replaced.pk, f"revision {replaced.revision_id} of deployment fraud no longer serves")]
    event = AuditEvent.objects.get(action="costs.ledger.open_intervals")
    assert event.changes["open_without_workload"][1][0]["allocation"] == orphan.pk
    orphan.refresh_from_db()
    assert orphan.stopped_at is None  # reported, not closed: when it really stopped isn't known here
