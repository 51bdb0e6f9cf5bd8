from apps.core.errors import Conflict


class AdmissionRefused(Conflict):
    """The request does not fit the team's quota or budget now. `extra` carries usage, request, limit and fits,
    so the API's 409 body tells the caller what would fit."""

    code = "quota_exceeded"
