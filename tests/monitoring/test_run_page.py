"""The run report page: mode and bound, every column's distribution from the data the verdict came from, the
Evidently link labelled with its sample cap; another team's run is a 404."""
import gzip

from django.test import Client

from apps.monitoring.models import RunReport
from apps.monitoring.services import monitor_run_execute
from tests.factories import member

from . import factories as f


def test_the_run_report_page_draws_the_summaries(team, other_team, viewer):
    mon = f.monitor(team, exact_max_rows=100)
    f.logs(mon.model_version, f.frame(600, drift=True))
    run = monitor_run_execute(run_id=f.run(mon, status="queued").pk, report=False)
    RunReport.objects.create(run=run, html_gz=gzip.compress(b"<html></html>"), sampled=True, reference_rows=1500,
                             current_rows=600)
    page = Client()
    page.force_login(viewer)
    response = page.get(f"/monitoring/runs/{run.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="drift-mode"' in html and "sketch mode" in html and f"±{run.rank_error:.4f}" in html
    assert "exact up to the sample cap: 600 current and 1500 reference rows" in html
    assert response.context["chart"] and {c["column"] for c in response.context["chart"]} == \
        {"amount", "age", "country", "channel", "prediction"}
    assert f'href="/monitoring/runs/{run.pk}/"' in page.get(f"/monitoring/monitors/{mon.pk}/").content.decode()

    stranger = Client()
    stranger.force_login(member(other_team, "viewer", "stranger"))
    assert stranger.get(f"/monitoring/runs/{run.pk}/").status_code == 404


def test_exact_size_and_retention_are_monitor_options_and_runs_say_their_mode(team, engineer, client_for):
    mon = f.monitor(team)
    client = client_for(engineer)
    response = client.patch(f"/api/v1/monitoring/monitors/{mon.pk}/", {"exact_max_rows": 100, "raw_retention_days": 7,
                                                                       "summary_retention_days": 90}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["exact_max_rows"], response.json()["raw_retention_days"]) == (100, 7)
    bad = client.patch(f"/api/v1/monitoring/monitors/{mon.pk}/", {"raw_retention_days": 0}, format="json")
    assert bad.status_code == 400 and "raw_retention_days" in bad.json()["error"]["fields"]
    f.logs(mon.model_version, f.frame(300))
    run = monitor_run_execute(run_id=f.run(mon, status="queued").pk, report=False)
    body = client.get(f"/api/v1/monitoring/runs/{run.pk}/").json()
    assert body["drift_mode"] == "sketch" and body["rank_error"] == run.rank_error > 0
