"""One error shape for every API response: {"error": {"code", "message", "fields"}}."""
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.context import current_request_id
from apps.core.errors import DomainError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict | None = None, **extra) -> dict:
    body = {"code": code, "message": message, "fields": fields or {}}
    body.update(extra)
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def _flatten(detail, path: str = "") -> list[str]:
    """Messages of nested errors say where: {"resources": {"cpu": [m]}} → "cpu: m" under `resources`."""
    if isinstance(detail, dict):
        return [msg for key, value in detail.items()
                for msg in _flatten(value, f"{path}.{key}" if path else str(key))]
    if isinstance(detail, list):
        nested = any(isinstance(value, (dict, list)) for value in detail)
        return [msg for index, value in enumerate(detail)
                for msg in _flatten(value, f"{path}[{index}]" if nested else path)]
    return [f"{path}: {detail}" if path else str(detail)]


def _field_messages(detail) -> dict:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    return {}


def _validation_message(fields: dict, detail) -> str:
    if not fields:
        return " ".join(_flatten(detail)) or "Invalid input."
    parts = []
    for name, messages in fields.items():
        label = "request" if name in ("non_field_errors", "__all__") else name
        parts.append(f"{label}: {' '.join(messages)}")
    return "Invalid input. " + "; ".join(parts)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.fields, **exc.extra), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / 1_000_000
        return Response(error_body("payload_too_large", f"The request body is larger than this endpoint accepts "
                                                        f"({limit_mb:g} MB); send less per request."),
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {}
        return Response(error_body("invalid", " ".join(exc.messages), fields), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(
            error_body("server_error", "The server failed to handle this request; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        fields = _field_messages(exc.detail)
        response.data = error_body("invalid", _validation_message(fields, exc.detail), fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body("malformed_request", f"{exc.detail} Send a valid JSON object.")
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else getattr(exc, "default_code", "error")
        response.data = error_body(code, " ".join(_flatten(exc.detail)))
    return response


def _json_error(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


@csrf_exempt  # a 404 changes nothing; without this, an unknown path with a session cookie gets Django's HTML 403
def api_not_found(request, exception=None):
    return _json_error(404, "not_found", f"No API endpoint at {request.path}. See /api/docs/ for the list.")


def api_server_error(request):
    return _json_error(500, "server_error", "The server failed to handle this request; it has been logged.")


def api_bad_request(request, exception=None):
    return _json_error(400, "bad_request", "The request could not be understood.")


def api_permission_denied(request, exception=None):
    return _json_error(403, "permission_denied", str(exception) or "You may not do this.")
