"""Every page links the icon, and /favicon.ico (what a browser asks for by itself on a page without the link, such
as an Evidently report opened alone) leads to it: no 404, which Chromium logs as a console error."""
import pytest

pytestmark = pytest.mark.django_db


def test_pages_link_the_icon_and_favicon_ico_leads_to_it(client):
    page = client.get("/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
