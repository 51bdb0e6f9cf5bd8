from django.utils import timezone
from rest_framework import authentication, exceptions

from .services import NODE_TOKEN_PREFIX, node_token_verify


class NodePrincipal:
    """request.user for an NVML agent: authenticated, but holding no team role and no admin right."""

    is_authenticated = True
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None

    def __init__(self, token):
        self.token = token
        self.username = f"node:{token.cluster.name}/{token.node}"

    def get_username(self) -> str:
        return self.username


class NodeTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer nt_<prefix>_<secret>`; other tokens are left to the next authenticator."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if len(header) != 2 or header[0].lower() != "bearer" or not header[1].startswith(f"{NODE_TOKEN_PREFIX}_"):
            return None
        token = node_token_verify(header[1])
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked node token; create one in Costs → Nodes.")
        token.__class__.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return NodePrincipal(token), token

    def authenticate_header(self, request):
        return 'Bearer realm="nodes"'
