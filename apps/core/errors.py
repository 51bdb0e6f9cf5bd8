"""Errors raised by services and selectors.

They carry what the caller must know to fix the request; the API turns them into the one error
shape (see apps.core.api.errors) and UI views into flash messages, so both say the same thing.
"""


class DomainError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: dict | None = None, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra or {}
        if code:
            self.code = code


class InvalidInput(DomainError):
    status_code = 400
    code = "invalid"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Forbidden(DomainError):
    status_code = 403
    code = "permission_denied"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Unauthenticated(DomainError):
    status_code = 401
    code = "authentication_failed"


class TooManyAttempts(DomainError):
    status_code = 429
    code = "throttled"


class Unprocessable(DomainError):
    status_code = 422
    code = "unprocessable"
