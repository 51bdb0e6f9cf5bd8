from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.audit.selectors import audit_event_list
from apps.core.api import errors as api_errors
from apps.teams.selectors import membership_list


@login_required
def home(request):
    memberships = membership_list(user=request.user).filter(user=request.user)
    recent = audit_event_list(user=request.user).select_related("team")[:10]
    return render(request, "core/home.html", {"memberships": memberships, "recent_events": recent})


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
    return render(request, "core/error.html", {"title": "Not found", "detail": f"Nothing at {request.path}."},
                  status=404)


def server_error(request):
    if _is_api(request):
        return api_errors.api_server_error(request)
    return render(request, "core/error.html", {"title": "Server error", "detail": "It has been logged."}, status=500)
