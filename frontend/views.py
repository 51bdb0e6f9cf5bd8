from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from apps.audit.selectors import audit_event_list
from apps.core.api import errors as api_errors
from apps.costs.budgets import budget_banners
from apps.costs.selectors import rollups_needing_attention
from apps.deployments.choices import DeploymentStatus, JobStatus
from apps.deployments.selectors import deployment_list, job_list
from apps.monitoring.choices import AlertStatus, RenderStatus, RunStatus
from apps.monitoring.models import ReportRender
from apps.monitoring.selectors import alert_list, run_list
from apps.registry.choices import PromotionStatus
from apps.registry.selectors import promotion_inbox, promotion_list, promotion_progress, sync_runs_needing_attention
from apps.teams.choices import NotificationStatus
from apps.teams.selectors import membership_list, webhook_notification_list

DASHBOARD_ROWS = 10


@login_required
def home(request):
    """Where approval, deployment, drift and cost meet: what needs the user's attention, across their teams."""
    user = request.user
    return render(request, "core/home.html", {
        "memberships": membership_list(user=user).filter(user=user),
        "waiting_for_me": promotion_progress(user=user, requests=list(
            promotion_inbox(user=user).select_related("version__model", "environment", "requested_by")[:DASHBOARD_ROWS])),
        "deployments": deployment_list(user=user)[:DASHBOARD_ROWS],
        "open_alerts": alert_list(user=user).exclude(status=AlertStatus.RESOLVED)[:DASHBOARD_ROWS],
        "budget_banners": budget_banners(user=user, month=timezone.now().date().replace(day=1)),
        "needs_attention": needs_attention(user=user),
        "recent_events": audit_event_list(user=user).select_related("team")[:DASHBOARD_ROWS],
    })


def needs_attention(*, user) -> list[dict]:
    """Background work of the user's teams that ran out of attempts (the runner gave up): each entity with its
    last error and a link to its page, where Retry is. Each list joins only what its line shows (the list
    selectors' joins for their own pages made these empty-most-of-the-time queries cost ~15 ms of planning each)."""
    items = [{"kind": "Promotion publish", "title": f"{r.version.model.name} v{r.version.version} → {r.environment.name}",
              "url": reverse("registry:request", args=[r.pk]), "team": r.team.slug, "error": r.last_error}
             for r in promotion_list(user=user).filter(status=PromotionStatus.NEEDS_ATTENTION).select_related(None)
             .select_related("version__model", "environment", "team")[:DASHBOARD_ROWS]]
    items += [{"kind": "Monitor run", "title": f"{r.monitor.name} run #{r.pk}",
               "url": reverse("monitoring:monitor", args=[r.monitor_id]), "team": r.monitor.team.slug,
               "error": r.last_error}
              for r in run_list(user=user).filter(status=RunStatus.NEEDS_ATTENTION).select_related(None)
              .select_related("monitor__team")[:DASHBOARD_ROWS]]
    items += [{"kind": "Full report", "title": f"{r.run.monitor.name} run #{r.run_id}",
               "url": reverse("monitoring:monitor", args=[r.run.monitor_id]), "team": r.run.monitor.team.slug,
               "error": r.last_error}
              for r in ReportRender.objects.filter(run__in=run_list(user=user), status=RenderStatus.NEEDS_ATTENTION)
              .select_related("run__monitor__team")[:DASHBOARD_ROWS]]
    items += [{"kind": "Deployment", "title": f"{d.name} ({d.environment.name})",
               "url": reverse("deployments:detail", args=[d.pk]), "team": d.team.slug, "error": d.last_error}
              for d in deployment_list(user=user).filter(status=DeploymentStatus.NEEDS_ATTENTION).select_related(None)
              .select_related("environment", "team")[:DASHBOARD_ROWS]]
    items += [{"kind": "Job", "title": f"{j.name} on {j.cluster.name}",
               "url": reverse("deployments:index") + "#jobs-table", "team": j.team.slug, "error": j.last_error}
              for j in job_list(user=user).filter(status=JobStatus.NEEDS_ATTENTION).select_related(None)
              .select_related("cluster", "team")[:DASHBOARD_ROWS]]
    items += [{"kind": "Registry sync", "title": f"Sync #{r.pk} ({r.get_trigger_display().lower()})",
               "url": reverse("registry:index") + "#sync", "team": r.team.slug if r.team else "platform",
               "error": r.last_error}
              for r in sync_runs_needing_attention().select_related("team")[:DASHBOARD_ROWS]]
    items += [{"kind": "Cost rollup", "title": f"Rollup #{r.pk}",
               "url": reverse("costs:index") + "#rollup", "team": "platform", "error": r.last_error}
              for r in rollups_needing_attention()[:DASHBOARD_ROWS]]
    items += [{"kind": "Webhook notification", "title": f"{n.endpoint.name}: {n.event}",
               "url": reverse("teams:settings") + "#webhook-attention", "team": n.endpoint.team.slug,
               "error": n.last_error}
              for n in webhook_notification_list(user=user, status=NotificationStatus.NEEDS_ATTENTION)[:DASHBOARD_ROWS]]
    return items


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    if _is_api(request):
        return api_errors.api_bad_request(request, exception)
    return render(request, "core/error.html", {"title": "Bad request", "detail": "The request could not be understood."},
                  status=400)


def permission_denied(request, exception=None):
    if _is_api(request):
        return api_errors.api_permission_denied(request, exception)
    return render(request, "core/error.html", {"title": "Not allowed", "detail": str(exception or "")}, status=403)


def not_found(request, exception=None):
    if _is_api(request):
        return api_errors.api_not_found(request, exception)
    # A view's Http404 carries what was missing ("Deployment 12 not found."); the resolver's carries a dict.
    message = exception.args[0] if exception is not None and exception.args and isinstance(exception.args[0], str) \
        else f"Nothing at {request.path}."
    return render(request, "core/error.html", {"title": "Page not found", "detail": message}, status=404)


def server_error(request):
    if _is_api(request):
        return api_errors.api_server_error(request)
    return render(request, "core/error.html", {"title": "Server error", "detail": "It has been logged."}, status=500)
