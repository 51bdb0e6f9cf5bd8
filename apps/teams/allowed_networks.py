"""The SSRF guard's run-time allow list (apps.core.models.AllowedNetwork, read by apps.core.netguard):
platform admins list, add and remove ranges, audited. Here rather than in apps.core because it needs the
platform-admin check and the audit log, and apps.core imports no domain app."""
import ipaddress

from django.db import transaction
from django.db.models import QuerySet

from apps.audit.services import audit_record
from apps.core.errors import Conflict, InvalidInput
from apps.core.models import AllowedNetwork

from .selectors import require_platform_admin


def allowed_network_list(*, user) -> QuerySet[AllowedNetwork]:
    require_platform_admin(user=user)
    return AllowedNetwork.objects.select_related("created_by")


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
