"""Issue 17's hand-computed scenario, end to end through the product's entry points, every figure to the cent.

September 2026 (a fixed past month): two teams on two nodes with different utilisation, a GPU price change
mid-month (2.00 → 3.00 per GPU-hour at 12:30 on the 15th, mid-hour), fraud's deployment serving on GPUs with CPU and
memory and then redeployed CPU-only, search's Job with CPU, memory and GPUs on another node, 8 GPUs of capacity,
the month closed, then node-b's last hour of NVML samples arriving late and the next beat rollup booking them in
October.

The catalog goes through the services a platform admin's API calls (gpu_type_create, gpu_price_set with
close_previous, resource_rate_set); samples through ingest.samples_ingest; the month through closing.month_close
and rollup.rollup_incremental; figures through selectors.cost_report. The ledger is driven with the calls
apps/deployments/capacity.py makes (ledger.deployment_interval_open with revision_requests of the revision's
resources, intervals_stop_for_revision on teardown; services.allocation_start_reserved with job_requests of the
Job's manifest, allocations_stop_for when it ends), with the moment passed explicitly since capacity.py always
means "now", and the node and GPUs given as the pod collector would learn them from the pods.

Expected values are computed here from first principles: GPU-hours × the price in force over each part of the
interval, idle = GPU-hours × (1 − that GPU's own measured utilisation) × price, CPU core-hours × CPU rate,
GiB-hours × memory rate, unallocated = (capacity − allocated) GPU-hours × price.
"""
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.costs import ledger
from apps.costs.closing import month_close
from apps.costs.ingest import samples_ingest
from apps.costs.models import GpuAllocation
from apps.costs.rollup import rollup_incremental
from apps.costs.selectors import cost_report
from apps.costs.services import (
    allocation_start_reserved, allocations_stop_for, gpu_price_set, gpu_type_create, node_token_create,
    resource_rate_set,
)
from apps.deployments import capacity
from apps.deployments.choices import JobStatus
from apps.deployments.models import DeploymentRevision, Job

from tests.deployments.factories import deployment_in

from . import factories as f

pytestmark = pytest.mark.django_db

SEP, OCT = datetime(2026, 9, 1, tzinfo=timezone.utc), datetime(2026, 10, 1, tzinfo=timezone.utc)
CLOSED_AT = OCT + timedelta(days=1)  # "now" when September is closed and the late samples arrive
DAY = datetime(2026, 9, 15, tzinfo=timezone.utc)
H = timedelta(hours=1)
CENT, MILLI = Decimal("0.01"), Decimal("0.001")

PRICE_CHANGE = DAY + 12 * H + timedelta(minutes=30)  # mid-hour, while both teams hold GPUs
PRICES = [(SEP, PRICE_CHANGE, Decimal("2.00")), (PRICE_CHANGE, None, Decimal("3.00"))]  # per GPU-hour
CPU_RATE, MEMORY_RATE = Decimal("0.04"), Decimal("0.005")  # per core-hour, per GiB-hour
CAPACITY = 8
# Each GPU's own utilisation (samples alternate ±10 around it, so each hour's mean is exact).
UTIL = {("node-a", 0): Decimal(20), ("node-a", 1): Decimal(40), ("node-b", 0): Decimal(70), ("node-b", 1): Decimal(50)}

GPU_REVISION = {"cpu": "2", "memory": "4Gi", "gpu_type": "A100-80GB", "gpu_count": 1, "replicas": 2,
                "autoscaling": None}  # 2 replicas: 2 GPUs, 4 cores, 8 GiB
CPU_REVISION = {"cpu": "500m", "memory": "1536Mi", "gpu_type": "", "gpu_count": 0, "replicas": 2,
                "autoscaling": None}  # 1 core, 3 GiB
JOB_MANIFEST = {"spec": {"template": {"spec": {"containers": [  # 2 GPUs, 6.25 cores, 24.5 GiB
    {"name": "train", "resources": {"limits": {"nvidia.com/gpu": 2}, "requests": {"cpu": "6", "memory": "24Gi"}}},
    {"name": "sidecar", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}]}}}}

FRAUD_GPU = (DAY + 10 * H, DAY + 14 * H)  # r1 serves on node-a's GPUs 0 and 1, redeployed CPU-only at 14:00
FRAUD_CPU = (DAY + 14 * H, DAY + 18 * H)  # r2 (CPU-only) serves until it is torn down
JOB = (DAY + 11 * H, DAY + 13 * H + timedelta(minutes=30))  # on node-b's GPUs 0 and 1
LATE = DAY + 13 * H  # node-b's samples from here on arrive after the month is closed


def hours(start, end) -> Decimal:
    return Decimal((end - start).total_seconds()) / 3600


def priced_hours(start, end) -> Decimal:
    """∫ price dt over [start, end): each part of the interval at the price in force then."""
    total = Decimal(0)
    for since, until, price in PRICES:
        overlap = hours(max(start, since), min(end, until or end))
        total += price * max(overlap, Decimal(0))
    return total


def samples(node: str, start, end) -> list[dict]:
    out, step = [], 0
    while start + step * timedelta(minutes=10) < end:
        for (sample_node, index), mean in UTIL.items():
            if sample_node == node:
                out.append({"ts": (start + step * timedelta(minutes=10)).timestamp(), "gpu_index": index,
                            "util": float(mean) + (10 if step % 2 else -10), "mem_used_mb": 1000,
                            "mem_total_mb": 80000})
        step += 1
    return out


def figures(row) -> dict:
    return {k: row[k] for k in ("gpu_hours", "gpu_cost", "other_cost", "idle_gpu_hours", "idle_cost", "total_cost")}


def expected(*, gpus=0, gpu_span=None, util=None, cpu_memory=()) -> dict:
    """A row from first principles: `gpus` GPUs over `gpu_span` at the mean utilisation `util` of those GPUs
    (None: no telemetry), plus (cores, GiB, span) CPU/memory parts."""
    gpu_hours = gpus * hours(*gpu_span) if gpu_span else Decimal(0)
    gpu_cost = gpus * priced_hours(*gpu_span) if gpu_span else Decimal(0)
    other = sum((cores * hours(*span) * CPU_RATE + gib * hours(*span) * MEMORY_RATE for cores, gib, span in cpu_memory),
                Decimal(0))
    idle = None if util is None else 1 - util / 100
    return {"gpu_hours": gpu_hours.quantize(MILLI), "gpu_cost": gpu_cost.quantize(CENT),
            "other_cost": other.quantize(CENT),
            "idle_gpu_hours": None if idle is None else (gpu_hours * idle).quantize(MILLI),
            "idle_cost": None if idle is None else (gpu_cost * idle).quantize(CENT),
            "total_cost": (gpu_cost + other).quantize(CENT)}


def test_a_month_of_two_teams_costed_closed_and_adjusted_to_the_cent(team, other_team, platform_admin):
    # The catalog, as a platform admin enters it: 8 A100s from 1 September at 2.00, 3.00 from the 15th at 12:30.
    cluster = f.cluster()
    gtype = gpu_type_create(actor=platform_admin, cluster=cluster, name="A100-80GB", capacity=CAPACITY,
                            capacity_from=SEP)
    gpu_price_set(actor=platform_admin, gpu_type=gtype, hourly_price=PRICES[0][2], effective_from=SEP)
    gpu_price_set(actor=platform_admin, gpu_type=gtype, hourly_price=PRICES[1][2], effective_from=PRICES[1][0],
                  close_previous=True)
    resource_rate_set(actor=platform_admin, cluster=cluster, cpu_core_hour=CPU_RATE, memory_gb_hour=MEMORY_RATE,
                      effective_from=SEP)
    for node in ("node-a", "node-b"):
        node_token_create(actor=platform_admin, cluster=cluster, node=node, gpu_count=2)
    samples_ingest(cluster=cluster, node="node-a", batch_id=uuid.uuid4(), samples=samples("node-a", *FRAUD_GPU),
                   now=CLOSED_AT)
    # node-b's agent reports the Job's first two hours; its 13:00 hour arrives only after the close.
    samples_ingest(cluster=cluster, node="node-b", batch_id=uuid.uuid4(), samples=samples("node-b", JOB[0], LATE),
                   now=CLOSED_AT)

    # fraud's deployment: r1 serves on GPUs, then r2 (CPU-only) replaces it, then r2 is torn down.
    deployment = deployment_in(team)
    r1, r2 = deployment.revisions.order_by("number")
    DeploymentRevision.objects.filter(pk=r1.pk).update(resources=GPU_REVISION)
    DeploymentRevision.objects.filter(pk=r2.pk).update(resources=CPU_REVISION)
    for revision, (start, _), node, gpus in ((r1, FRAUD_GPU, "node-a", [0, 1]), (r2, FRAUD_CPU, "", [])):
        revision.refresh_from_db()
        resources = revision.resources
        requests = ledger.revision_requests(resources, replicas=capacity.replicas(resources))
        requests.node, requests.gpu_indexes = node, gpus
        ledger.deployment_interval_open(
            deployment_id=deployment.pk, revision_id=revision.pk, team=team, cluster=cluster,
            gpu_type=resources["gpu_type"], gpu_count=capacity.gpu_count(resources),
            model_version=revision.model_version, started_at=start, **requests.ledger_fields())
    ledger.intervals_stop_for_revision(revision_id=r2.pk, stopped_at=FRAUD_CPU[1])
    # The redeploy closed the GPU interval where the CPU-only one opened: no overlap, no GPU still held.
    intervals = {a.revision_id: a for a in GpuAllocation.objects.filter(deployment_id=deployment.pk)}
    assert (intervals[r1.pk].started_at, intervals[r1.pk].stopped_at) == FRAUD_GPU
    assert (intervals[r2.pk].started_at, intervals[r2.pk].stopped_at, intervals[r2.pk].gpu_count) == (*FRAUD_CPU, 0)
    assert (intervals[r1.pk].cpu_cores, intervals[r1.pk].memory_gb) == (Decimal(4), Decimal(8))
    assert (intervals[r2.pk].cpu_cores, intervals[r2.pk].memory_gb) == (Decimal(1), Decimal(3))

    # search's Job: applied at 11:00, finished at 13:30.
    job = Job.objects.create(team=other_team, cluster=cluster, namespace="search-jobs", name="train-ranker",
                             image="trainer:1", gpu_type="A100-80GB", gpu_count=2, status=JobStatus.RUNNING,
                             manifest=JOB_MANIFEST)
    requests = ledger.job_requests(job.manifest)
    allocation_start_reserved(team=job.team, cluster=job.cluster, gpu_type=job.gpu_type, gpu_count=job.gpu_count,
                              job_id=job.pk, cpu_cores=requests.cpu_cores, memory_gb=requests.memory_gib,
                              node="node-b", gpu_indexes=[0, 1], started_at=JOB[0])
    assert allocations_stop_for(job_id=job.pk, stopped_at=JOB[1]) == 1
    assert (requests.gpus, requests.cpu_cores, requests.memory_gib) == (2, Decimal("6.25"), Decimal("24.5"))

    # Closing September rebuilds it one last time. Half an hour of the Job has no samples yet, so search's idle
    # figure is "no telemetry" (None), not the idle of the hours that have them (an understated figure).
    month_close(actor=platform_admin, month=SEP.date(), now=CLOSED_AT)
    node_a = (UTIL[("node-a", 0)] + UTIL[("node-a", 1)]) / 2  # fraud's own GPUs: 30 %, not the cluster's mean
    node_b = (UTIL[("node-b", 0)] + UTIL[("node-b", 1)]) / 2
    fraud = expected(gpus=2, gpu_span=FRAUD_GPU, util=node_a, cpu_memory=[(4, 8, FRAUD_GPU), (1, 3, FRAUD_CPU)])
    search = expected(gpus=2, gpu_span=JOB, util=None, cpu_memory=[(Decimal("6.25"), Decimal("24.5"), JOB)])
    allocated = 2 * hours(*FRAUD_GPU) + 2 * hours(*JOB)
    unallocated_priced = (CAPACITY * priced_hours(SEP, OCT) - 2 * priced_hours(*FRAUD_GPU) - 2 * priced_hours(*JOB))
    unallocated = {"gpu_hours": (CAPACITY * hours(SEP, OCT) - allocated).quantize(MILLI),
                   "gpu_cost": unallocated_priced.quantize(CENT), "other_cost": Decimal("0.00"),
                   "idle_gpu_hours": None, "idle_cost": None, "total_cost": unallocated_priced.quantize(CENT)}
    # The hand arithmetic, written out once: 2 GPUs × (2.5 h × 2.00 + 1.5 h × 3.00) = 19.00, idle 70 % of it;
    # 4 cores × 4 h × 0.04 + 8 GiB × 4 h × 0.005 + 1 core × 4 h × 0.04 + 3 GiB × 4 h × 0.005 = 1.02.
    assert fraud == {"gpu_hours": Decimal("8.000"), "gpu_cost": Decimal("19.00"), "other_cost": Decimal("1.02"),
                     "idle_gpu_hours": Decimal("5.600"), "idle_cost": Decimal("13.30"), "total_cost": Decimal("20.02")}
    # 2 GPUs × (1.5 h × 2.00 + 1 h × 3.00) = 12.00; 6.25 cores × 2.5 h × 0.04 + 24.5 GiB × 2.5 h × 0.005 = 0.93.
    assert (search["gpu_cost"], search["other_cost"], search["total_cost"]) == (
        Decimal("12.00"), Decimal("0.93"), Decimal("12.93"))
    # (8 × 348.5 − 5 − 3) GPU-hours × 2.00 + (8 × 371.5 − 3 − 2) × 3.00: the hour of the change split at 12:30
    # for the unused capacity too (priced at the hour's start, it would be 14,459.00).
    assert unallocated["gpu_cost"] == Decimal("14461.00") and unallocated["gpu_hours"] == Decimal("5747.000")

    def september(group_by="team"):
        return {r["key"]: r for r in cost_report(user=platform_admin, start=SEP.date(),
                                                 end=(OCT - timedelta(days=1)).date(), group_by=group_by)}

    by_team = september()
    assert set(by_team) == {"fraud", "search", "unallocated"}
    assert figures(by_team["fraud"]) == fraud
    assert figures(by_team["search"]) == search
    assert figures(by_team["unallocated"]) == unallocated
    by_deployment = september("deployment")
    assert set(by_deployment) == {str(deployment.pk), "none", "unallocated"}
    assert by_deployment[str(deployment.pk)]["deployment"] == "fraud/fraud"
    assert figures(by_deployment[str(deployment.pk)]) == fraud  # the CPU-only part costed with the GPU part
    assert figures(by_deployment["none"]) == search  # the Job: no deployment
    closed = {group_by: september(group_by) for group_by in ("team", "deployment")}

    # Late: node-b's 13:00 hour arrives on 2 October; the beat rollup books the Job's idle figure in October.
    samples_ingest(cluster=cluster, node="node-b", batch_id=uuid.uuid4(), samples=samples("node-b", LATE, DAY + 14 * H),
                   now=CLOSED_AT)
    rollup_incremental(now=CLOSED_AT)
    assert {g: september(g) for g in closed} == closed  # September as closed, to the cent
    october = {r["key"]: r for r in cost_report(user=platform_admin, start=OCT.date(), end=OCT.date())}
    adjustments = {k: r for k, r in october.items() if k.startswith("adjustment-")}
    late = expected(gpus=2, gpu_span=JOB, util=node_b)
    # Only the idle figure changes: 5 GPU-hours × 40 % idle = 2 GPU-hours, 12.00 × 40 % = 4.80; no cost moves.
    assert (late["idle_gpu_hours"], late["idle_cost"]) == (Decimal("2.000"), Decimal("4.80"))
    assert set(adjustments) == {"adjustment-2026-09|search"}
    assert adjustments["adjustment-2026-09|search"]["label"] == "Adjustment to September 2026 · search"
    assert figures(adjustments["adjustment-2026-09|search"]) == {
        "gpu_hours": Decimal("0.000"), "gpu_cost": Decimal("0.00"), "other_cost": Decimal("0.00"),
        "idle_gpu_hours": late["idle_gpu_hours"], "idle_cost": late["idle_cost"], "total_cost": Decimal("0.00")}
    event = AuditEvent.objects.get(action="costs.month.adjust")
    assert event.changes["booked_in"] == [None, "2026-10"] and event.changes["rows"] == [None, 1]
    # October's own line: the whole of 1 October's capacity, unused, at 3.00.
    assert october["unallocated"]["gpu_cost"] == (CAPACITY * priced_hours(OCT, OCT + 24 * H)).quantize(CENT)

    rollup_incremental(now=CLOSED_AT + H)  # nothing late any more: no second booking
    assert AuditEvent.objects.filter(action="costs.month.adjust").count() == 1
