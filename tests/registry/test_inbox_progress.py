"""The approver inbox and request page in people: "1 of 2" approvals, who may still approve, who decided, gate
values rounded, and Approve/Reject gone for whoever already decided."""
import re

from django.test import Client

from apps.registry.models import PromotionRequest
from tests.registry.factories import ModelVersionFactory, RegisteredModelFactory, policy


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _row(page: str, request_id: int) -> str:
    return re.search(rf'<tr data-request="{request_id}">.*?</tr>', page, re.S).group(0)


def test_inbox_shows_progress_who_still_approves_and_who_decided(team, people):
    model = RegisteredModelFactory(team=team, name="fraud-model")
    version = ModelVersionFactory(model=model, metrics={"accuracy": 0.9777777777777777}, creator="mlflow")
    other = ModelVersionFactory(model=model, metrics={"accuracy": 0.99}, creator="mlflow")
    policy(team, approvals=2, gates=[{"kind": "metric", "metric": "accuracy", "op": ">=", "threshold": 0.9}])
    dave, bob, carol = _client(people["dave"]), _client(people["bob"]), _client(people["carol"])
    dave.post(f"/registry/versions/{version.pk}/request-promotion/", {"environment": "production"})
    request = PromotionRequest.objects.get(version=version)
    page = dave.get(f"/registry/requests/{request.pk}/").content.decode()
    assert "0.978" in page and "0.9777777" not in page
    assert "Approve</button>" not in page  # dave requested it: he reads why, no button

    bob.post(f"/registry/requests/{request.pk}/approve/", {"comment": "ok"})
    row = _row(bob.get("/registry/inbox/").content.decode(), request.pk)
    assert re.search(r"1 of 2</span> approvals", row) and "(bob)" in row
    # Who may still approve: the approvers and team admins who haven't decided, never the requester.
    assert "Needs 1 more from:" in row and "carol (Approver)" in row and "alice (Team admin)" in row
    assert "bob (Approver)" not in row and "dave" not in row.split("Needs")[1]
    # The dashboard's "Waiting for your approval" card reads the same progress for whoever may still decide.
    card = carol.get("/").content.decode().split('id="waiting-for-me"')[1].split("</section>")[0]
    assert "fraud-model v" in card and re.search(r"1 of 2</span> approvals", card) and "(bob)" in card
    assert "fraud-model" not in bob.get("/").content.decode().split('id="waiting-for-me"')[1].split("</section>")[0]
    page = bob.get(f"/registry/requests/{request.pk}/").content.decode()
    assert "Approve</button>" not in page and "Reject</button>" not in page
    assert "You already approved this request" in page
    assert 'class="secondary">Cancel request' not in page  # bob (approver) can't operate
    assert 'class="secondary">Cancel request' in dave.get(f"/registry/requests/{request.pk}/").content.decode()
    page = carol.get(f"/registry/requests/{request.pk}/").content.decode()
    assert "Approve</button>" in page and "Reject</button>" in page

    carol.post(f"/registry/requests/{request.pk}/approve/", {"comment": "ok"})
    dave.post(f"/registry/versions/{other.pk}/request-promotion/", {"environment": "production"})
    cancelled = PromotionRequest.objects.get(version=other)
    dave.post(f"/registry/requests/{cancelled.pk}/cancel/", {})
    page = bob.get("/registry/inbox/").content.decode()
    recent = page[page.index('id="recent"'):]
    assert '<span class="decided-by">bob, carol</span>' in _row(recent, request.pk)
    assert '<span class="decided-by">dave (cancelled)</span>' in _row(recent, cancelled.pk)
    page = dave.get(f"/registry/models/{model.pk}/").content.decode()  # its request list and metrics table too
    assert '<span class="decided-by">bob, carol</span>' in _row(page, request.pk)
    assert ">0.978<" in page and ">0.9777777777777777<" not in page
