"""Node tokens for the NVML agents: create, revoke, verify, and what a node may report."""
from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.teams.selectors import require_platform_admin

from ..models import NodeToken
from .lookups import cluster_resolve


NODE_TOKEN_PREFIX = "nt"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


MAX_NODE_GPUS = 1024  # the ingest's gpu_index bound


@transaction.atomic
def node_token_create(*, actor, cluster, node: str, gpu_count: int) -> tuple[NodeToken, str]:
    """Register a node and its GPUs (indexes 0..gpu_count-1) for an NVML agent. Returns the token and its
    plaintext (shown once). Registering a node again issues another token; the earlier ones stay valid until
    revoked."""
    require_platform_admin(user=actor)
    cluster = cluster_resolve(cluster)
    if not node.strip():
        raise InvalidInput("Name the node the agent runs on.", fields={"node": ["required"]})
    if not 0 <= gpu_count <= MAX_NODE_GPUS:
        raise InvalidInput(f"gpu_count must be between 0 and {MAX_NODE_GPUS}.", fields={"gpu_count": ["out of range"]})
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    token = NodeToken.objects.create(cluster=cluster, node=node.strip(), gpu_count=gpu_count, prefix=prefix,
                                     secret_hash=_hash(secret))
    audit_record(actor=actor, action="costs.node_token.create", target=token,
                 changes={"cluster": [None, cluster.name], "node": [None, token.node], "prefix": [None, prefix],
                          "gpu_count": [None, gpu_count]})
    return token, f"{NODE_TOKEN_PREFIX}_{prefix}_{secret}"


@transaction.atomic
def node_token_revoke(*, actor, token: NodeToken) -> NodeToken:
    """Revoke a node token: the agent's next post is a 401. Revoking twice is a 409."""
    require_platform_admin(user=actor)
    now = timezone.now()
    if not NodeToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        raise Conflict(f"Node token {token.prefix} for {token.node} is already revoked.")
    token.revoked_at = now
    audit_record(actor=actor, action="costs.node_token.revoke", target=token,
                 changes={"revoked_at": [None, now.isoformat()]})
    return token


def node_samples_check(*, cluster, node: str, gpu_indexes: set[int]) -> None:
    """Samples come only from registered nodes (a live token for the cluster and node) and for GPU indexes the
    node registered; anything else is a 400 and nothing is stored."""
    registered = (NodeToken.objects.filter(cluster=cluster, node=node, revoked_at__isnull=True)
                  .aggregate(gpus=Max("gpu_count"), tokens=Count("pk")))
    if not registered["tokens"]:
        raise InvalidInput(f"Node '{node}' is not registered on cluster '{cluster.name}'; register it in "
                           "Costs → Nodes (POST /api/v1/costs/node-tokens/).", fields={"node": ["not registered"]})
    gpus = registered["gpus"]
    unknown = sorted(index for index in gpu_indexes if index >= gpus)
    if unknown:
        has = f"{gpus} GPU(s), indexes 0..{gpus - 1}" if gpus else "no GPUs"
        raise InvalidInput(f"Node '{node}' registered {has}; the samples name GPU index "
                           f"{', '.join(map(str, unknown))}. Register the node again with its GPU count.",
                           fields={"samples": ["unknown gpu_index"]})


def node_token_verify(raw: str) -> NodeToken | None:
    import hmac

    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != NODE_TOKEN_PREFIX:
        return None
    token = NodeToken.objects.select_related("cluster").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(parts[2])):
        return None
    return token
