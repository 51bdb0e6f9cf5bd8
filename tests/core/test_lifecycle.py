"""Archive, restore and delete for teams, clusters and GPU types: what other rows refer to is archived (history
kept, no new work, reversible by a platform admin); only what nothing refers to is deleted. All audited."""
import pytest

from apps.audit.models import AuditEvent
from apps.deployments.models import Cluster, Job
from apps.teams.models import Team
from tests.costs import factories as cf
from tests.deployments.factories import deployment_in, environment, kube_cluster
from tests.factories import TeamFactory, member

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"
CLUSTERS = "/api/v1/deployments/clusters/"
GPU_TYPES = "/api/v1/costs/gpu-types/"


def test_a_referenced_team_is_archived_not_deleted_and_takes_no_new_work_until_restored(
        client_for, platform_admin, team):
    deployment_in(team)
    environment("staging")
    kube_cluster(team=team)
    engineer = member(team, "ml_engineer", "eng")
    admin = client_for(platform_admin)

    refused = admin.delete(f"{TEAMS}fraud/")
    assert refused.status_code == 409, refused.json()
    error = refused.json()["error"]
    assert error["code"] == "referenced" and "archive it instead" in error["message"]
    assert error["references"]["deployments"] == 1 and error["references"]["memberships"] == 1
    assert Team.objects.filter(slug="fraud").exists()

    archived = admin.post(f"{TEAMS}fraud/archive/")
    assert archived.status_code == 200 and archived.json()["archived_at"]
    assert [t["slug"] for t in admin.get(TEAMS).json()["results"]] == []
    assert [t["slug"] for t in admin.get(f"{TEAMS}?archived=true").json()["results"]] == ["fraud"]

    job = {"team": "fraud", "cluster": "kind", "image": "registry.local/train:1", "command": ["python", "t.py"]}
    blocked = client_for(engineer).post("/api/v1/deployments/jobs/", job, format="json")
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "archived", blocked.json()
    assert "Team 'fraud' is archived" in blocked.json()["error"]["message"]
    assert client_for(engineer).get("/api/v1/deployments/deployments/").status_code == 200  # history stays readable

    assert admin.post(f"{TEAMS}fraud/restore/").status_code == 200
    assert client_for(engineer).post("/api/v1/deployments/jobs/", job, format="json").status_code == 201
    assert Job.objects.count() == 1
    actions = list(AuditEvent.objects.filter(object_type="teams.team").values_list("action", flat=True))
    assert "team.archive" in actions and "team.restore" in actions


def test_an_unreferenced_cluster_is_deleted_and_audited(client_for, platform_admin):
    admin = client_for(platform_admin)
    created = admin.post(CLUSTERS, {"name": "spare", "kind": "local"}, format="json")
    assert created.status_code == 201, created.json()
    response = admin.delete(f"{CLUSTERS}{created.json()['id']}/")
    assert response.status_code == 204
    assert not Cluster.objects.filter(name="spare").exists()
    event = AuditEvent.objects.filter(action="cluster.delete").get()
    assert event.changes["deleted"] == ["spare", None]


def test_an_archived_cluster_refuses_new_jobs(client_for, platform_admin, team):
    environment("staging")
    cluster = kube_cluster(team=team)
    admin = client_for(platform_admin)
    assert admin.post(f"{CLUSTERS}{cluster.pk}/archive/").status_code == 200
    assert admin.post(f"{CLUSTERS}{cluster.pk}/archive/").status_code == 409  # already archived
    job = {"team": "fraud", "cluster": "kind", "image": "registry.local/train:1", "command": ["python", "t.py"]}
    refused = client_for(member(team, "ml_engineer", "eng")).post("/api/v1/deployments/jobs/", job, format="json")
    assert refused.status_code == 409 and "Cluster 'kind' is archived" in refused.json()["error"]["message"]
    assert not Job.objects.exists()


def test_an_archived_gpu_type_admits_nothing_and_a_priced_one_cannot_be_deleted(client_for, platform_admin, team):
    gtype = cf.gpu_type()
    cf.quota(team, gtype, guaranteed=2)
    admin = client_for(platform_admin)
    refused = admin.delete(f"{GPU_TYPES}{gtype.pk}/")
    assert refused.status_code == 409 and "gpu prices" in refused.json()["error"]["message"]
    assert admin.post(f"{GPU_TYPES}{gtype.pk}/archive/").status_code == 200
    check = client_for(member(team, "ml_engineer", "eng")).post(
        "/api/v1/costs/admission/", {"team": "fraud", "cluster": "local", "gpu_type": "A100-80GB", "gpu_count": 1},
        format="json")
    assert check.status_code == 409 and "GPU type 'A100-80GB' is archived" in check.json()["error"]["message"]


def test_only_platform_admins_archive_and_the_list_filter_is_strict(client_for, platform_admin, team):
    TeamFactory(slug="spare")
    admin_of_team = member(team, "team_admin", "tadmin")
    assert client_for(admin_of_team).post(f"{TEAMS}fraud/archive/").status_code == 403
    assert client_for(admin_of_team).delete(f"{TEAMS}fraud/").status_code == 403
    bad = client_for(platform_admin).get(f"{TEAMS}?archived=maybe")
    assert bad.status_code == 400 and "true or false" in bad.json()["error"]["message"]
    assert client_for(platform_admin).delete(f"{TEAMS}spare/").status_code == 204
    assert not Team.objects.filter(slug="spare").exists() and Team.objects.filter(slug="fraud").exists()
