"""Pages stay bounded when a team has thousands of objects (the page benchmark's large seed, bench/pages/): lists
page or show the costliest rows, pickers offer a bounded choice, counts are counted, not loaded."""
from datetime import date
from decimal import Decimal

from apps.costs.models import UsageDaily
from apps.costs.views import TABLE_ROWS
from apps.deployments.models import Deployment
from apps.deployments.views import PAGE_SIZE, RECENT_VERSIONS
from apps.registry.models import ModelVersion, RegisteredModel
from tests.costs import factories as costs
from tests.deployments.factories import environment, local_cluster
from tests.factories import member


def test_deployments_list_pages(client, team):
    model = RegisteredModel.objects.create(name="m", team=team)
    env, cluster = environment(), local_cluster()
    Deployment.objects.bulk_create(Deployment(team=team, name=f"d{i:03d}", model=model, environment=env,
                                              cluster=cluster, namespace="ns") for i in range(PAGE_SIZE + 1))
    client.force_login(member(team, "viewer"))

    first, second = client.get("/deployments/"), client.get("/deployments/?page=2")

    assert first.content.count(b'href="/deployments/') - second.content.count(b'href="/deployments/') == PAGE_SIZE - 1
    assert f"Page 1 of 2 · {PAGE_SIZE + 1} deployments".encode() in first.content


def test_wizard_offers_the_newest_versions_not_all(client, team):
    model = RegisteredModel.objects.create(name="m", team=team)
    ModelVersion.objects.bulk_create(ModelVersion(model=model, version=n, team=team, model_name="m")
                                     for n in range(1, RECENT_VERSIONS + 11))
    client.force_login(member(team, "ml_engineer"))

    versions = client.get("/deployments/new/").context["versions"]

    assert len(versions) == RECENT_VERSIONS and versions[0].version == RECENT_VERSIONS + 10


def test_registry_counts_versions_per_model(client, team):
    model = RegisteredModel.objects.create(name="m", team=team)
    ModelVersion.objects.bulk_create(ModelVersion(model=model, version=n, team=team, model_name="m")
                                     for n in range(1, 8))
    client.force_login(member(team, "viewer"))

    assert client.get("/registry/").context["rows"][0]["versions"] == 7


def test_costs_table_shows_the_costliest_rows_and_totals_all(client, platform_admin, team):
    cluster, gtype = costs.cluster(), costs.gpu_type()
    day = date.today().replace(day=1)
    UsageDaily.objects.bulk_create(UsageDaily(day=day, team=team, cluster=cluster, gpu_type=gtype, deployment_id=i,
                                              gpu_hours=1, gpu_cost=Decimal(i)) for i in range(1, TABLE_ROWS + 6))
    client.force_login(platform_admin)

    response = client.get("/costs/?group_by=deployment")

    rows = response.context["rows"]
    assert len(rows) == TABLE_ROWS and rows[0]["total_cost"] == TABLE_ROWS + 5
    assert response.context["totals"]["gpu_hours"] == TABLE_ROWS + 5
    assert f"The {TABLE_ROWS} costliest of {TABLE_ROWS + 5} rows".encode() in response.content
