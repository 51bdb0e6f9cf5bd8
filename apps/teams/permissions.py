from rest_framework.permissions import SAFE_METHODS, BasePermission

from .choices import TokenScope
from .selectors import token_scope


class ReadScopeIsReadOnly(BasePermission):
    """A `read` token only reads: this also covers the caller's own objects (creating and revoking
    tokens), which no team capability guards. Every other scope is enforced by the capability checks."""

    message = ("This API token's scope 'read' only allows reading (GET, HEAD, OPTIONS); use a token with "
               "scope operate, approve or admin.")
    code = "token_scope"

    def has_permission(self, request, view) -> bool:
        return request.method in SAFE_METHODS or token_scope(user=request.user) != TokenScope.READ
