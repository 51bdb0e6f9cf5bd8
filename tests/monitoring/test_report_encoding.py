"""The Evidently report page sends the stored gzip to browsers that take gzip, inflated HTML to the others."""
import gzip

from apps.monitoring.models import RunReport
from tests.factories import member
from tests.monitoring import factories as f

HTML = b"<html><body>" + b"<p>drift</p>" * 1000 + b"</body></html>"


def test_report_is_sent_as_stored_when_gzip_is_accepted(client, team):
    run = f.run(f.monitor(team))
    RunReport.objects.create(run=run, html_gz=gzip.compress(HTML))
    client.force_login(member(team, "viewer"))
    url = f"/monitoring/runs/{run.pk}/report/"

    compressed = client.get(url, headers={"accept-encoding": "gzip, deflate, br"})
    plain = client.get(url)

    assert compressed["Content-Encoding"] == "gzip" and gzip.decompress(compressed.content) == HTML
    assert not plain.has_header("Content-Encoding") and plain.content == HTML
    assert "Accept-Encoding" in compressed["Vary"] and "Accept-Encoding" in plain["Vary"]
