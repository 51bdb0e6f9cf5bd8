"""UI views: the login page's SSO button, the OIDC redirect and callback, logout (RP-initiated where the provider
offers it), the "no team yet" page, the platform admins' group mapping page and team admins' service accounts."""
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.core.errors import DomainError, Forbidden, InvalidInput
from apps.teams.choices import SERVICE_ACCOUNT_ROLES, Capability, Role, TokenScope
from apps.teams.selectors import team_get_by_slug, team_ids_for, team_list

from . import selectors, services
from .errors import LoginRefused, ProviderUnavailable
from .provider import provider_metadata, sso_enabled


def _login_failed(request, exc: DomainError, *, title: str = "Single sign-on failed"):
    return render(request, "sso/login_failed.html", {"title": title, "reason": exc.message}, status=exc.status_code)


class OidcLoginView(OIDCAuthenticationRequestView):
    """Redirects to the provider's authorization endpoint (code flow, PKCE S256, state and nonce)."""

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)  # endpoints come from discovery

    def get(self, request):
        if not sso_enabled():
            return _login_failed(request, LoginRefused("Single sign-on is not configured here (OIDC_ISSUER)."),
                                 title="Single sign-on is off")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata()["authorization_endpoint"]
        except ProviderUnavailable as exc:
            return _login_failed(request, exc, title=f"{settings.OIDC_PROVIDER_NAME} is unavailable")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


UNKNOWN_LOGIN = LoginRefused("This answer from the provider does not belong to a login started in this browser "
                             "(unknown or used state); start again from the login page.")


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code; every refusal is shown with its reason."""

    def get(self, request):
        try:
            return super().get(request)
        except ProviderUnavailable as exc:
            return _login_failed(request, exc, title=f"{settings.OIDC_PROVIDER_NAME} is unavailable")
        except LoginRefused as exc:
            return _login_failed(request, exc)
        except SuspiciousOperation:
            return _login_failed(request, UNKNOWN_LOGIN)

    def login_failure(self):
        error = self.request.GET.get("error")
        if not error:
            return _login_failed(self.request, UNKNOWN_LOGIN)
        detail = self.request.GET.get("error_description") or error
        return _login_failed(self.request, LoginRefused(f"{settings.OIDC_PROVIDER_NAME} answered: {detail}."))

    @property
    def success_url(self):
        if selectors.has_no_team(user=self.user):
            return reverse("sso:no-team")
        return super().success_url


@require_POST
def logout(request):
    """Ends the session here, then at the provider when its discovery offers end_session_endpoint (RP-initiated
    logout); the provider sends the browser back to the login page."""
    id_token = request.session.get("oidc_id_token")
    auth.logout(request)
    login_url = request.build_absolute_uri(reverse(settings.LOGOUT_REDIRECT_URL))
    if not (id_token and sso_enabled()):
        return HttpResponseRedirect(login_url)
    try:
        end_session = provider_metadata().get("end_session_endpoint")
    except ProviderUnavailable:
        end_session = None
    if not end_session:
        return HttpResponseRedirect(login_url)
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": login_url,
                       "client_id": settings.OIDC_RP_CLIENT_ID})
    # A page that moves on by itself, not a redirect: the CSP's form-action 'self' would block a redirect of
    # this form submission to the provider's origin.
    return render(request, "sso/logging_out.html", {"end_session_url": f"{end_session}?{query}",
                                                    "provider_name": settings.OIDC_PROVIDER_NAME})


@login_required
def no_team(request):
    if not selectors.has_no_team(user=request.user):
        return redirect("home")
    identity = selectors.sso_identity_for(user=request.user)
    return render(request, "sso/no_team.html", {"groups": identity.groups if identity else []})


@login_required
def mapping_page(request):
    try:
        mappings = selectors.group_mapping_list(user=request.user)
    except Forbidden as exc:
        return render(request, "core/error.html", {"title": "Not allowed", "detail": exc.message}, status=403)
    return render(request, "sso/mappings.html", {
        "mappings": mappings, "teams": team_list(user=request.user), "roles": Role.choices,
        "sso_enabled": sso_enabled(), "issuer": settings.OIDC_ISSUER, "groups_claim": settings.OIDC_CLAIM_GROUPS,
    })


@login_required
@require_POST
def mapping_create(request):
    try:
        target = request.POST.get("target", "")
        if target == "platform_admin":
            team, role, platform_admin = None, "", True
        else:
            team, role, platform_admin = team_get_by_slug(user=request.user, slug=target), request.POST.get("role", ""), False
        mapping = services.group_mapping_create(actor=request.user, group=request.POST.get("group", ""), team=team,
                                                role=role, platform_admin=platform_admin)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Mapped {mapping}.")
    return redirect("sso:mappings")


@login_required
@require_POST
def mapping_delete(request, mapping_id: int):
    try:
        services.group_mapping_delete(actor=request.user,
                                      mapping=selectors.group_mapping_get(user=request.user, mapping_id=mapping_id))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Mapping deleted; SSO memberships it gave are removed.")
    return redirect("sso:mappings")


@login_required
def service_account_page(request):
    """Team admins' service accounts: create, issue and revoke tokens, deactivate."""
    accounts = list(selectors.service_account_list(user=request.user))
    for account in accounts:
        account.tokens = selectors.service_account_token_list(account=account)
        account.membership = account.user.memberships.filter(team=account.team).first()
    admin_team_ids = team_ids_for(user=request.user, capability=Capability.ADMINISTER)
    return render(request, "sso/service_accounts.html", {
        "accounts": accounts,
        "admin_teams": [t for t in team_list(user=request.user) if admin_team_ids is None or t.pk in admin_team_ids],
        "roles": [(r, Role(r).label) for r in SERVICE_ACCOUNT_ROLES], "token_scopes": TokenScope.choices,
        "token_default_days": settings.API_TOKEN_DEFAULT_DAYS, "token_max_days": settings.API_TOKEN_MAX_DAYS,
        "new_token": request.session.pop("new_service_account_token", None),
    })


def _service_account_action(request, act, success: str):
    try:
        act()
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if success:
            messages.success(request, success)
    return redirect("sso:service-accounts")


@login_required
@require_POST
def service_account_create(request):
    def act():
        team = team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
        services.service_account_create(actor=request.user, team=team, name=request.POST.get("name", ""),
                                        role=request.POST.get("role", ""),
                                        description=request.POST.get("description", ""))
    return _service_account_action(request, act, f"Service account {request.POST.get('name', '')} created.")


@login_required
@require_POST
def service_account_token_create(request, account_id: int):
    def act():
        account = selectors.service_account_get(user=request.user, account_id=account_id)
        days = request.POST.get("expires_in_days", "").strip()
        if days and not days.isdigit():
            raise InvalidInput(f"Expiry must be a whole number of days, not '{days}'.")
        token, plaintext = services.service_account_token_create(
            actor=request.user, account=account, name=request.POST.get("name", ""),
            scope=request.POST.get("scope", TokenScope.READ), expires_in_days=int(days) if days else None)
        # Kept in the session for exactly one page view, then gone: the plaintext is shown once.
        request.session["new_service_account_token"] = {"account": account.user.username, "name": token.name,
                                                        "value": plaintext}
    return _service_account_action(request, act, "")


@login_required
@require_POST
def service_account_token_revoke(request, account_id: int, token_id: int):
    def act():
        account = selectors.service_account_get(user=request.user, account_id=account_id)
        services.service_account_token_revoke(actor=request.user, account=account, token_id=token_id)
    return _service_account_action(request, act, "Token revoked.")


@login_required
@require_POST
def service_account_deactivate(request, account_id: int):
    def act():
        services.service_account_deactivate(
            actor=request.user, account=selectors.service_account_get(user=request.user, account_id=account_id))
    return _service_account_action(request, act, "Service account deactivated; its tokens are revoked.")
