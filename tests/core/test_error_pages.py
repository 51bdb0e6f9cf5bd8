"""Error pages render for a request no middleware saw: the test server answers a missing static file with the 404
handler before authentication runs, so there is no `request.user` (it failed with a 500 there)."""
import pytest
from django.http import Http404
from django.test import RequestFactory

from frontend.views import not_found

pytestmark = pytest.mark.django_db


def test_the_404_page_renders_for_a_request_without_a_user():
    request = RequestFactory().get("/static/css/app.0123456789ab.css")
    response = not_found(request, Http404("'css/app.0123456789ab.css' could not be found"))
    assert response.status_code == 404
    assert b"Page not found" in response.content and b"could not be found" in response.content
