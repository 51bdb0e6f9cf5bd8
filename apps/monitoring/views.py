"""UI: overview of monitored deployments, the drift dashboard, alerts, run reports."""
import gzip

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_replace
from django.contrib import messages
from django.db import transaction
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, InvalidInput, NotFound
from apps.teams.selectors import has_capability

from . import selectors, services
from .models import ReportRender


@login_required
def index(request):
    from apps.registry.selectors import model_version_list
    from apps.teams.selectors import team_ids_for

    operate = team_ids_for(user=request.user, capability="operate")
    versions = model_version_list(user=request.user).exclude(model__team=None).order_by("model__name", "-version")
    if operate is not None:
        versions = versions.filter(model__team__in=operate)
    return render(request, "monitoring/index.html", {
        "rows": selectors.overview(user=request.user),
        "alerts": selectors.alert_list(user=request.user).exclude(status="resolved")[:50],
        "versions": versions[:200],
    })


@login_required
@require_POST
def monitor_new(request):
    """Upload reference data and create a monitor on it, in one go (both or neither)."""
    from apps.registry.selectors import model_version_get

    upload = request.FILES.get("reference")
    try:
        if upload is None:
            raise InvalidInput("Choose a reference file (CSV or Parquet).")
        with transaction.atomic():
            version = model_version_get(user=request.user, version_id=request.POST.get("model_version"))
            reference = services.reference_upload(
                actor=request.user, model_version=version, name=upload.name, content=upload.read(),
                filename=upload.name, prediction=request.POST.get("prediction") or None,
                target=request.POST.get("target") or None)
            monitor = services.monitor_create(actor=request.user, team=version.model.team,
                                              name=request.POST.get("name", "").strip(), model_version=version,
                                              reference=reference, window=request.POST.get("window") or "daily")
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("monitoring:index")
    messages.success(request, f"Monitor {monitor.name} created with {reference.row_count} reference rows; "
                              f"check the inferred schema below.")
    return redirect("monitoring:monitor", monitor.pk)


@login_required
@require_POST
def reference_schema(request, monitor_id: int):
    try:
        monitor = selectors.monitor_get(user=request.user, monitor_id=monitor_id)
        if monitor.reference is None:
            raise InvalidInput("This monitor has no reference data.")
        schema = []
        for col in monitor.reference.schema:
            if request.POST.get(f"drop-{col['name']}"):
                continue
            schema.append({"name": col["name"], "kind": request.POST.get(f"kind-{col['name']}", col["kind"]),
                           "role": request.POST.get(f"role-{col['name']}", col["role"])})
        services.reference_schema_update(actor=request.user, reference=monitor.reference, schema=schema)
        messages.success(request, "Schema saved; the next run uses it.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("monitoring:monitor", monitor_id)


@login_required
def monitor_detail(request, monitor_id: int):
    try:
        data = selectors.dashboard(user=request.user, monitor_id=monitor_id)
    except NotFound as exc:  # another team's monitor reads as one that does not exist
        raise Http404(exc.message) from exc
    data["pending"] = list(data["monitor"].runs.filter(status__in=["queued", "running"]).order_by("-id")[:5])
    data["attention"] = list(data["monitor"].runs.filter(status="needs_attention").order_by("-id"))
    data["can_operate"] = has_capability(user=request.user, team_id=data["monitor"].team_id, capability="operate")
    data["report_attention"] = list(ReportRender.objects.filter(run__monitor=data["monitor"], status="needs_attention"))
    return render(request, "monitoring/monitor.html", data)


@login_required
def alert_detail(request, alert_id: int):
    try:
        alert = selectors.alert_get(user=request.user, alert_id=alert_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    run = alert.last_run
    return render(request, "monitoring/alert.html", {
        "alert": alert, "run": run, "has_report": bool(run and hasattr(run, "report")),
        "drifted": list(run.features.filter(drifted=True)) if run else [],
        "can_operate": has_capability(user=request.user, team_id=alert.team_id, capability="operate"),
    })


@login_required
def run_detail(request, run_id: int):
    """A run's lightweight report: verdicts and reference-vs-current distributions, drawn by the app (the
    everyday view; the Evidently HTML stays one link away)."""
    try:
        data = selectors.run_summary(user=request.user, run_id=run_id)
    except NotFound as exc:  # another team's run reads as one that does not exist
        raise Http404(exc.message) from exc
    return render(request, "monitoring/run.html", data)


# Evidently's report is a page of inline scripts built from uploaded data (column names, values). It runs
# sandboxed: an opaque origin with no access to the session, cookies or the app's pages.
@csp_replace({"script-src": [UNSAFE_INLINE], "sandbox": ["allow-scripts", "allow-popups", "allow-downloads"]})
@login_required
def run_report(request, run_id: int):
    try:
        body = selectors.run_report_gz(user=request.user, run_id=run_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("monitoring:index")
    # Stored gzipped (a 6 MB report is 1.5 MB): a browser that takes gzip gets the stored bytes, not inflated ones.
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(body, content_type="text/html; charset=utf-8", headers={"Content-Encoding": "gzip"})
    else:
        response = HttpResponse(gzip.decompress(body), content_type="text/html; charset=utf-8")
    patch_vary_headers(response, ["Accept-Encoding"])
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="drift-run-{run_id}.html"'
    return response


def _act(request, fn, success: str, back):
    try:
        fn()
        messages.success(request, success)
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(back)


@login_required
@require_POST
def monitor_action(request, monitor_id: int, verb: str):
    back = ("monitoring:monitor", monitor_id)
    try:
        monitor = selectors.monitor_get(user=request.user, monitor_id=monitor_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("monitoring:index")
    actions = {
        "run": (lambda: services.monitor_run_request(actor=request.user, monitor=monitor),
                "Run queued over the last window; progress shows below."),
        "rollback": (lambda: services.monitor_rollback(actor=request.user, monitor=monitor,
                                                       reason=request.POST.get("reason", "")),
                     "Rollback started; the deployment returns to its earlier revision."),
        "retrain": (lambda: services.alert_retrain(actor=request.user, monitor=monitor), "Retraining job dispatched."),
    }
    if verb not in actions:
        messages.error(request, f"Unknown action '{verb}'.")
        return redirect(*back)
    fn, ok = actions[verb]
    return _act(request, fn, ok, redirect(*back).url)


@login_required
@require_POST
def alert_action(request, alert_id: int, verb: str):
    try:
        alert = selectors.alert_get(user=request.user, alert_id=alert_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("monitoring:index")
    comment = request.POST.get("comment", "")
    actions = {
        "acknowledge": (lambda: services.alert_acknowledge(actor=request.user, alert=alert, comment=comment),
                        "Alert acknowledged."),
        "resolve": (lambda: services.alert_resolve(actor=request.user, alert=alert, comment=comment), "Alert resolved."),
        "rollback": (lambda: services.alert_rollback(actor=request.user, alert=alert),
                     "Rollback started with this alert as the reason."),
        "retrain": (lambda: services.alert_retrain(actor=request.user, alert=alert), "Retraining job dispatched."),
    }
    if verb not in actions:
        messages.error(request, f"Unknown action '{verb}'.")
        return redirect("monitoring:alert", alert_id)
    fn, ok = actions[verb]
    return _act(request, fn, ok, redirect("monitoring:alert", alert_id).url)


def _run_action(request, run_id: int, service, ok: str):
    """Call `service(actor=, run=)` on one of the user's runs and go back to its monitor page."""
    try:
        run = selectors.run_get(user=request.user, run_id=run_id)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("monitoring:index")
    return _act(request, lambda: service(actor=request.user, run=run), ok,
                redirect("monitoring:monitor", run.monitor_id).url)


@login_required
@require_POST
def run_full_report(request, run_id: int):
    return _run_action(request, run_id, services.run_full_report_request,
                       "Full-data report queued; it replaces the sampled one when ready.")


@login_required
@require_POST
def run_retry(request, run_id: int):
    return _run_action(request, run_id, services.monitor_run_retry,
                       f"Run #{run_id} queued again with a fresh round of attempts.")
