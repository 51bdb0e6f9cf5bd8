"""Writes of platform-wide settings (platform admins only, audited)."""
import ipaddress

from django.db import transaction

from apps.audit.services import audit_record
from apps.teams.selectors import require_platform_admin

from .errors import Conflict, InvalidInput
from .models import AllowedNetwork


@transaction.atomic
def allowed_network_add(*, actor, cidr: str, reason: str) -> AllowedNetwork:
    require_platform_admin(user=actor)
    try:
        network = str(ipaddress.ip_network(cidr.strip(), strict=False))
    except ValueError:
        raise InvalidInput(f"'{cidr}' is not an IP network; give one such as 10.20.0.0/16 or 10.20.0.7/32.",
                           fields={"cidr": ["Not an IP network."]})
    if not reason.strip():
        raise InvalidInput("Say what must be reachable in that range (it shows in the audit log).",
                           fields={"reason": ["Required."]})
    if AllowedNetwork.objects.filter(cidr=network).exists():
        raise Conflict(f"{network} is already allowed.", fields={"cidr": ["Already allowed."]})
    row = AllowedNetwork.objects.create(cidr=network, reason=reason.strip(), created_by=actor)
    audit_record(actor=actor, action="ssrf.network_allow", target=row,
                 changes={"cidr": [None, network], "reason": [None, row.reason]})
    return row


@transaction.atomic
def allowed_network_remove(*, actor, network: AllowedNetwork) -> None:
    require_platform_admin(user=actor)
    audit_record(actor=actor, action="ssrf.network_remove", target=network, changes={"cidr": [network.cidr, None]})
    network.delete()
