"""The page benchmark (`bench/pages/`) times every UI page: each route of the UI URL conf is either one of its
pages or listed as not a page, with the reason. A new page fails this test until the benchmark knows it."""
import importlib.util
import uuid
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

import frontend.urls

spec = importlib.util.spec_from_file_location(
    "bench_pages", Path(__file__).resolve().parents[2] / "bench" / "pages" / "pages.py")
bench_pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_pages)

# Stand-ins for path arguments: any value gets through the URL conf, and the views refuse before looking it up.
ARGUMENTS = {"int": 1, "str": "approve", "string": "approve", "uuid": uuid.UUID(int=1)}


def ui_routes(patterns=None, namespace=""):
    """(full url name, converter names by argument) for every named route under frontend.urls."""
    for entry in frontend.urls.urlpatterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from ui_routes(entry.url_patterns, namespace + (f"{entry.namespace}:" if entry.namespace else ""))
        elif isinstance(entry, URLPattern):
            assert entry.name, f"UI route {entry.pattern} has no name"
            converters = {arg: type(conv).__name__.removesuffix("Converter").lower()
                          for arg, conv in entry.pattern.converters.items()}
            for group in entry.pattern.regex.groupindex:  # a re_path's groups: ids are numbers
                converters.setdefault(group, "int" if group == "pk" or group.endswith("_id") else "str")
            yield namespace + entry.name, converters


def test_every_ui_route_is_benchmarked_or_says_why_not():
    routes = dict(ui_routes())
    timed = {name for name, _, _ in bench_pages.PAGES}
    assert not timed & set(bench_pages.NOT_TIMED), "a route is both timed and listed as not a page"
    assert set(routes) - timed - set(bench_pages.NOT_TIMED) == set(), "add these to bench/pages/pages.py"
    assert (timed | set(bench_pages.NOT_TIMED)) - set(routes) == set(), "bench/pages/pages.py names unknown routes"
    for name, template, _ in bench_pages.PAGES:
        path = template.format_map({k: 1 for k in ("model", "version", "promotion", "draft", "deployment",
                                                     "monitor", "alert", "run", "last_month")}).split("?")[0]
        assert resolve(path, urlconf=get_resolver().urlconf_name).view_name == name, path


@pytest.mark.django_db
def test_routes_listed_as_actions_refuse_get(client, team_admin):
    client.force_login(team_admin)
    for name, converters in ui_routes():
        if bench_pages.NOT_TIMED.get(name) != bench_pages.ACTION:
            continue
        url = reverse(name, kwargs={arg: ARGUMENTS[kind] for arg, kind in converters.items()})
        assert client.get(url).status_code == 405, f"{name} ({url}) answers GET: time it in bench/pages/pages.py"
