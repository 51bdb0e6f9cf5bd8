"""Static files as `make run` serves them: collected with hashed names, compressed, cached for a year by WhiteNoise,
so a repeat visit to a chart page transfers the page and not plotly.js (4.5 MB; 0.97 MB as brotli) again."""
import re

import pytest
from django.core.management import call_command
from pytest_django.live_server_helper import LiveServer

from tests.browser.conftest import TIMEOUT_MS

REPEAT_VISIT_BUDGET = 100_000


@pytest.fixture
def collected_server(settings, tmp_path, transactional_db):
    """A live server whose /static/ is answered by WhiteNoise from a fresh collectstatic, as under `make run`
    (the shared live server answers /static/ itself, from the finders, with no caching headers)."""
    settings.STATIC_ROOT = str(tmp_path / "static")
    # Compressing plotly.js takes a minute on a busy machine, and caching is what this test is about; `make run`
    # compresses (.br and .gz next to each file).
    settings.WHITENOISE_SKIP_COMPRESS_EXTENSIONS = ["js", "css", "map", "json", "svg", "html", "txt"]
    # Only what the pages load: plotly's sample datasets, the admin's and the API docs' assets are left out.
    call_command("collectstatic", "--noinput", "--ignore", "datasets", "--ignore", "templates", "--ignore", "admin",
                 "--ignore", "drf_spectacular_sidecar", "--ignore", "rest_framework", verbosity=0)
    server = LiveServer("127.0.0.1:0", start=False)
    # Unwrap the live server's own static and media handlers: WhiteNoise (a middleware) answers /static/.
    server.thread.static_handler = lambda media_handler: media_handler.application
    server.start()
    yield server
    server.stop()


def transferred_bytes(page, url: str) -> int:
    """Bytes that came over the network (headers and compressed bodies) while loading url; cache hits count 0."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes = []
    cdp.on("Network.loadingFinished", lambda event: sizes.append(event["encodedDataLength"]))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    cdp.detach()
    return int(sum(sizes))


def test_chart_page_repeat_visit_transfers_under_100_kb(browser, login, collected_server, team_admin):
    context = browser.new_context(base_url=collected_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = login(context.new_page(), team_admin)

    script = page.request.get(collected_server.url + "/audit/").text()
    plotly_url = re.search(r'src="(/static/plotly/plotly\.min\.[0-9a-f]{12}\.js)"', script)
    assert plotly_url, "the chart page links plotly.js by a hashed name"
    response = page.request.get(collected_server.url + plotly_url[1])
    assert "immutable" in response.headers["cache-control"]
    assert "max-age=315360000" in response.headers["cache-control"]

    first = transferred_bytes(page, "/audit/")
    repeat = transferred_bytes(page, "/audit/")
    print(f"\n/audit/ transferred: first visit {first:,} B, repeat visit {repeat:,} B")
    assert first > 4_000_000, "the first visit loads plotly.js"
    assert repeat < REPEAT_VISIT_BUDGET, f"repeat visit {repeat:,} B: static files were fetched again"
    context.close()
