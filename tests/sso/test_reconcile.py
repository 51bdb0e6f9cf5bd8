"""The SSO login's reconciliation: memberships follow the mapped groups (added, changed, removed), manual ones
stay, platform admin follows its group only when SSO granted it; every change is audited."""
import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEvent
from apps.core.errors import Conflict
from apps.sso import services
from apps.sso.errors import LoginRefused
from apps.sso.models import GroupMapping, SsoIdentity
from apps.teams import services as team_services
from apps.teams.choices import MembershipSource
from apps.teams.models import Membership
from tests.factories import TeamFactory, UserFactory, member

pytestmark = pytest.mark.django_db
ISSUER = "https://idp.example.test"
User = get_user_model()


def login(sub: str, groups: list[str], username: str | None = None, **claims):
    return services.sso_login(issuer=ISSUER, claims={"sub": sub, "preferred_username": username or sub,
                                                     "groups": groups, **claims})


def teams_of(user) -> dict[str, tuple[str, str]]:
    return {m.team.slug: (m.role, m.source) for m in Membership.objects.filter(user=user).select_related("team")}


@pytest.fixture
def teams():
    return TeamFactory(slug="fraud"), TeamFactory(slug="search")


@pytest.fixture
def mappings(teams):
    fraud, search = teams
    GroupMapping.objects.create(group="fraud-approvers", team=fraud, role="approver")
    GroupMapping.objects.create(group="fraud-admins", team=fraud, role="team_admin")
    GroupMapping.objects.create(group="search-eng", team=search, role="ml_engineer")
    GroupMapping.objects.create(group="platform-ops", platform_admin=True)


def test_first_login_creates_the_user_from_claims_and_audits(mappings):
    user = login("sub-1", ["fraud-approvers", "unmapped"], username="grace", email="grace@example.test",
                 name="Grace Brewster Hopper")
    assert (user.username, user.email, user.first_name, user.last_name) == ("grace", "grace@example.test",
                                                                          "Grace Brewster", "Hopper")
    assert not user.has_usable_password()
    assert teams_of(user) == {"fraud": ("approver", MembershipSource.SSO)}
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_label"))
    assert actions == [("sso.user.create", "system"), ("sso.membership.add", "system")]
    added = AuditEvent.objects.get(action="sso.membership.add")
    assert added.changes["groups"] == [None, ["fraud-approvers"]] and added.team.slug == "fraud"


def test_memberships_follow_the_groups_at_each_login(mappings):
    user = login("sub-1", ["fraud-approvers"])
    assert login("sub-1", ["fraud-approvers", "fraud-admins", "search-eng"]) == user
    # Two groups into one team: the strongest role wins.
    assert teams_of(user) == {"fraud": ("team_admin", "sso"), "search": ("ml_engineer", "sso")}
    login("sub-1", ["search-eng"])
    assert teams_of(user) == {"search": ("ml_engineer", "sso")}
    login("sub-1", [])
    assert teams_of(user) == {}
    assert list(AuditEvent.objects.filter(action__startswith="sso.membership").order_by("id")
                .values_list("action", flat=True)) == [
        "sso.membership.add", "sso.membership.change_role", "sso.membership.add", "sso.membership.remove",
        "sso.membership.remove"]


def test_manual_memberships_are_never_touched(mappings, teams):
    fraud, _ = teams
    user = login("sub-1", [])
    Membership.objects.create(team=fraud, user=user, role="viewer")  # added by a team admin
    login("sub-1", ["fraud-admins"])
    assert teams_of(user) == {"fraud": ("viewer", "manual")}
    login("sub-1", [])
    assert teams_of(user) == {"fraud": ("viewer", "manual")}


def test_platform_admin_follows_its_group_only_when_sso_granted_it(mappings):
    user = login("sub-1", ["platform-ops"])
    assert user.is_superuser and user.is_staff
    user = login("sub-1", [])
    assert not user.is_superuser
    assert list(AuditEvent.objects.filter(action__startswith="sso.platform_admin").values_list("action", flat=True)
                .order_by("id")) == ["sso.platform_admin.grant", "sso.platform_admin.revoke"]

    manual_admin = login("sub-2", [])
    User.objects.filter(pk=manual_admin.pk).update(is_superuser=True)
    login("sub-2", ["platform-ops"])
    assert login("sub-2", []).is_superuser  # granted by hand, kept


def test_a_mapping_change_applies_at_once_to_users_seen_with_the_group(teams):
    fraud, _ = teams
    admin = UserFactory(username="root", is_superuser=True)
    user = login("sub-1", ["fraud-approvers"])
    assert teams_of(user) == {}
    mapping = services.group_mapping_create(actor=admin, group="fraud-approvers", team=fraud, role="approver")
    assert teams_of(user) == {"fraud": ("approver", "sso")}
    services.group_mapping_delete(actor=admin, mapping=mapping)
    assert teams_of(user) == {}
    assert AuditEvent.objects.filter(action="sso.group_mapping.create", actor_label="root").exists()
    assert AuditEvent.objects.filter(action="sso.group_mapping.delete", actor_label="root").exists()


def test_a_taken_username_is_not_taken_over(settings):
    UserFactory(username="grace")
    with pytest.raises(LoginRefused, match="already exists here and is not linked"):
        login("sub-1", [], username="grace")
    settings.OIDC_LINK_EXISTING_USERS = True
    assert login("sub-1", [], username="grace").username == "grace"
    assert SsoIdentity.objects.get(subject="sub-1").user.username == "grace"


def test_the_identity_is_the_subject_not_the_username(mappings):
    first = login("sub-1", [], username="grace")
    assert login("sub-1", [], username="grace-renamed") == first  # the username claim changed at the provider
    with pytest.raises(LoginRefused, match="already exists"):
        login("sub-2", [], username="grace")  # another person reusing the name


def test_no_username_claim_and_deactivated_users_are_refused():
    with pytest.raises(LoginRefused, match="no 'preferred_username' claim"):
        services.sso_login(issuer=ISSUER, claims={"sub": "sub-9"})
    user = login("sub-1", [])
    User.objects.filter(pk=user.pk).update(is_active=False)
    with pytest.raises(LoginRefused, match="deactivated"):
        login("sub-1", [])


def test_team_admins_cannot_edit_sso_memberships_by_hand(mappings, teams):
    fraud, _ = teams
    admin = member(fraud, "team_admin", "fraud-lead")
    user = login("sub-1", ["fraud-approvers"])
    membership = Membership.objects.get(user=user, team=fraud)
    with pytest.raises(Conflict, match="comes from SSO groups"):
        team_services.membership_change_role(actor=admin, membership=membership, role="viewer")
    with pytest.raises(Conflict, match="comes from SSO groups"):
        team_services.membership_remove(actor=admin, membership=membership)
