"""Schemathesis generates requests from the OpenAPI schema and sends them to the WSGI app in-process.

Every operation is a test of its own, as a team member and as a platform admin, on the test database with
seeded objects; each operation runs in a savepoint that is rolled back, so what one writes (a platform admin's
catalog edits included) is thrown away before the next. Examples, boundary values from the schema (coverage
phase) and methods an operation does not allow are sent. A 5xx, a status or content type the schema does not
document, or a body that does not match the documented schema fails the test.

Select with `-m fuzz` (or leave it out with `-m "not fuzz"`). Three generated examples an operation keep the
run to a few minutes of CPU; raise max_examples locally to search deeper.
"""
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from .conftest import bearer

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _load_schema():
    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator

    loaded = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    loaded.app = get_wsgi_application()
    return loaded


# Loaded at collection (pytest-django has set Django up by then), so each operation is a test of its own.
schema = _load_schema()


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """Seeded once for the module in a transaction rolled back at its end; each operation's test runs in a
    savepoint inside it (pytest-django's `db`), so what one operation writes is gone before the next.

    The WSGI handler closes the database connection after each request; the test client does not, and
    neither may these calls, or the transaction (and the seeded objects) would go."""
    from django.db import transaction

    from tests.factories import TeamFactory

    from .conftest import seed

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield seed(TeamFactory(slug="fraud"))
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            signals.request_started.connect(close_old_connections)
            signals.request_finished.connect(close_old_connections)


FUZZ_SETTINGS = settings(max_examples=3, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_team_member(case, seeded):
    """A team admin of `fraud` (operate and approve, and administer): most operations reach their services."""
    case.call_and_validate(headers=bearer(seeded.operator_token), checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_platform_admin(case, seeded):
    """A platform admin: the platform-wide operations (catalog, floors, allowed networks) too."""
    case.call_and_validate(headers=bearer(seeded.admin_token), checks=CHECKS)
