import pytest

from tests.factories import member

from . import factories as f


@pytest.fixture
def engineer(team):
    return member(team, "ml_engineer", "eng")


@pytest.fixture
def viewer(team):
    return member(team, "viewer", "watcher")


@pytest.fixture
def mon(team):
    return f.monitor(team)
