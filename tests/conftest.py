import os
import warnings

import pytest
from rest_framework.test import APIClient

from tests.factories import TeamFactory, UserFactory, member

pytest_plugins = ["tests.harness.mlflow_server", "tests.harness.redis_server", "tests.harness.http_receiver", "tests.harness.celery_worker",
                  "tests.harness.oidc_provider"]


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def team(db):
    return TeamFactory(slug="fraud")


@pytest.fixture
def other_team(db):
    return TeamFactory(slug="search")


@pytest.fixture
def team_admin(team):
    return member(team, "team_admin", "tadmin")


@pytest.fixture
def platform_admin(db):
    return UserFactory(username="root-admin", is_superuser=True, is_staff=True)


@pytest.fixture
def client_for(api_client):
    """An API client logged in as the given user (session auth, like the UI)."""
    def make(user):
        client = APIClient()
        client.force_authenticate(user=user)
        return client
    return make


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2 costs ~0.3 s a user; the matrix creates hundreds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def cache_keys_per_test_process():
    """Every pytest process on the machine shares one Redis; keep this run's throttle counters apart."""
    from django.conf import settings

    settings.CACHES["default"]["KEY_PREFIX"] = f"test-{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def prediction_log_root(tmp_path_factory):
    """The columnar prediction log's Parquet files go to a directory of this run, removed with pytest's temp
    dirs; the environment variable carries it to the Celery worker processes tests start."""
    from django.conf import settings

    root = str(tmp_path_factory.mktemp("prediction-log"))
    os.environ["MONITORING_LOG_ROOT"] = settings.MONITORING_LOG_ROOT = root
    return root


@pytest.fixture(scope="session", autouse=True)
def no_collected_static(tmp_path_factory):
    """Static files as on a clean clone: a checkout where `make run` collected them (var/staticfiles) has a
    manifest, with which pages link hashed names that the test servers (finders) can't answer: pages without
    their CSS and plotly.js."""
    from django.conf import settings
    from django.core.signals import setting_changed
    from django.test import signals  # noqa: F401  its receivers reset the static files storage

    settings.STATIC_ROOT = str(tmp_path_factory.mktemp("static"))
    setting_changed.send(sender=None, setting="STATIC_ROOT", value=settings.STATIC_ROOT, enter=True)


@pytest.fixture(autouse=True)
def no_earlier_token_failures(cache_keys_per_test_process):
    """Tests send bad API tokens from 127.0.0.1 on purpose; each starts with that address unthrottled."""
    from apps.teams.throttling import token_failures_clear

    token_failures_clear(ip="127.0.0.1")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database per pytest process, so several runs on one machine never collide."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    database.setdefault("TEST", {})["NAME"] = f"test_{database['NAME']}_{os.getpid()}"


# Rows the data migrations create, which every test may count on: (migration module, function).
MIGRATION_SEED = [("apps.registry.migrations.0002_default_environments", "create_defaults"),
                  ("apps.registry.migrations.0006_policy_floor_and_team_ownership", "protect_production"),
                  ("apps.deployments.migrations.0002_local_cluster", "create_local_cluster")]


def _transactional(item) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool({"transactional_db", "live_server"} & set(getattr(item, "fixturenames", ()))
                or (marker is not None and marker.kwargs.get("transaction")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A transactional test ends by emptying every table (TRUNCATE), the migrations' rows too. pytest-django
    runs those tests last in one process; spread over processes (pytest-xdist: scripts/devstack.py test), a
    plain test can come after one in the same process, so the migrations' rows are put back once the test's
    fixtures (the flush among them) are torn down. Idempotent."""
    yield
    if nextitem is None or not _transactional(item):  # last test: the session's fixtures (its database) are gone
        return
    import importlib

    from django.apps import apps
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        for module, function in MIGRATION_SEED:
            getattr(importlib.import_module(module), function)(apps, None)


AUDIT_TRUNCATE_GUARDS = {"audit_auditevent": "audit_event_no_truncate",
                         "audit_auditcheckpoint": "audit_checkpoint_no_truncate"}


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Django empties tables between transactional tests with TRUNCATE, which the audit tables refuse; the test
    database lets it through (tests/security/test_audit_tamper.py switches the guard back on to prove it)."""
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        for table, trigger in AUDIT_TRUNCATE_GUARDS.items():
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    yield
    # Sessions something left open on the test database (a thread or a child process that outlived its test) would
    # make dropping it fail, and every run would leave a database behind: name them (warnings summary), then end them.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pid, application_name, state, left(query, 200) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        for pid, application, state, query in cursor.fetchall():
            warnings.warn(f"A session outlived the tests on {connection.settings_dict['NAME']}: pid {pid} "
                          f"{application!r} {state}: {query}")
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
