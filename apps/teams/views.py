from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, InvalidInput
from apps.outbox.choices import OutboxStatus
from apps.outbox.selectors import outbox_message_list
from apps.outbox.services import outbox_requeue

from . import selectors, services
from .choices import Capability, NotificationStatus, Role, TokenScope
from .notifications import notifications_retry


@login_required
def settings_page(request):
    admin_team_ids = selectors.team_ids_for(user=request.user, capability=Capability.ADMINISTER)
    memberships = selectors.membership_list(user=request.user)
    return render(request, "teams/settings.html", {
        "memberships": memberships,
        "admin_teams": [t for t in selectors.team_list(user=request.user) if admin_team_ids is None or t.pk in admin_team_ids],
        "admin_team_ids": admin_team_ids,
        "roles": Role.choices,
        "tokens": selectors.api_token_list(user=request.user),
        "token_scopes": TokenScope.choices,
        "token_default_days": settings.API_TOKEN_DEFAULT_DAYS,
        "token_max_days": settings.API_TOKEN_MAX_DAYS,
        "webhooks": selectors.webhook_list(user=request.user),
        "webhook_deliveries": selectors.webhook_delivery_list(user=request.user)[:20],
        "webhook_attention": selectors.webhook_notification_list(user=request.user,
                                                                 status=NotificationStatus.NEEDS_ATTENTION)[:50],
        "new_webhook_secret": request.session.pop("new_webhook_secret", None),
        "new_token": request.session.pop("new_token", None),
        "dead_letters": (outbox_message_list(user=request.user).filter(status=OutboxStatus.DEAD)[:50]
                         if request.user.is_superuser else None),
    })


def _run(request, action, success: str):
    try:
        action()
    except DomainError as exc:
        messages.error(request, exc.message)

    else:
        messages.success(request, success)
    return redirect("teams:settings")


@login_required
@require_POST
def switch_team(request):
    try:
        team = selectors.team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        request.session[selectors.SESSION_TEAM_KEY] = team.pk
        messages.success(request, f"Now working in team {team.name}.")
    return redirect(request.META.get("HTTP_REFERER") or "home")


@login_required
@require_POST
def membership_add(request):
    def act():
        team = selectors.team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
        services.membership_add(actor=request.user, team=team, username=request.POST.get("username", "").strip(),
                                role=request.POST.get("role", ""))
    return _run(request, act, f"Added {request.POST.get('username')}.")


@login_required
@require_POST
def membership_change_role(request, membership_id: int):
    def act():
        membership = selectors.membership_get(user=request.user, membership_id=membership_id)
        services.membership_change_role(actor=request.user, membership=membership, role=request.POST.get("role", ""))
    return _run(request, act, "Role changed.")


@login_required
@require_POST
def membership_remove(request, membership_id: int):
    def act():
        membership = selectors.membership_get(user=request.user, membership_id=membership_id)
        services.membership_remove(actor=request.user, membership=membership)
    return _run(request, act, "Member removed.")


@login_required
@require_POST
def token_create(request):
    try:
        days = request.POST.get("expires_in_days", "").strip()
        if days and not days.isdigit():
            raise InvalidInput(f"Expiry must be a whole number of days, not '{days}'.")
        token, plaintext = services.api_token_create(actor=request.user, name=request.POST.get("name", ""),
                                                     scope=request.POST.get("scope", TokenScope.READ),
                                                     expires_in_days=int(days) if days else None)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        # Kept in the session for exactly one page view, then gone: the plaintext is shown once.
        request.session["new_token"] = {"name": token.name, "value": plaintext}
    return redirect("teams:settings")


@login_required
@require_POST
def token_revoke(request, token_id: int):
    def act():
        services.api_token_revoke(actor=request.user, token=selectors.api_token_get(user=request.user, token_id=token_id))
    return _run(request, act, "Token revoked.")


def _show_webhook_secret_once(request, endpoint, secret: str) -> None:
    # Kept in the session for exactly one page view, then gone, like a new API token.
    request.session["new_webhook_secret"] = {"name": endpoint.name, "value": secret}


@login_required
@require_POST
def webhook_create(request):
    try:
        team = selectors.team_get_by_slug(user=request.user, slug=request.POST.get("team", ""))
        events = [e.strip() for e in request.POST.get("events", "").split(",") if e.strip()]
        endpoint, secret = services.webhook_create(
            actor=request.user, team=team, name=request.POST.get("name", "").strip() or "webhook",
            url=request.POST.get("url", "").strip(), events=events)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        _show_webhook_secret_once(request, endpoint, secret)
        messages.success(request, "Webhook added.")
    return redirect("teams:settings")


@login_required
@require_POST
def webhook_rotate_secret(request, webhook_id: int):
    try:
        endpoint, secret = services.webhook_rotate_secret(
            actor=request.user, endpoint=selectors.webhook_get(user=request.user, webhook_id=webhook_id))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        _show_webhook_secret_once(request, endpoint, secret)
        messages.success(request, "Signing secret rotated; the old one no longer verifies.")
    return redirect("teams:settings")


@login_required
@require_POST
def webhook_delete(request, webhook_id: int):
    def act():
        services.webhook_delete(actor=request.user,
                                endpoint=selectors.webhook_get(user=request.user, webhook_id=webhook_id))
    return _run(request, act, "Webhook removed.")


@login_required
@require_POST
def webhook_retry_notifications(request, webhook_id: int):
    def act():
        notifications_retry(actor=request.user, endpoint=selectors.webhook_get(user=request.user, webhook_id=webhook_id))
    return _run(request, act, "The webhook's failed notifications are sent again.")


@login_required
@require_POST
def outbox_message_requeue(request, message_id):
    return _run(request, lambda: outbox_requeue(actor=request.user, message_id=message_id), "Message requeued.")
