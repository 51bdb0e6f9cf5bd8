"""What the control plane may do when it connects to a cluster: only to addresses the SSRF guard allows,
and never by running a kubeconfig's `exec` command or `auth-provider` plugin on its own hosts (unless a
platform admin allows it with KUBECONFIG_ALLOW_EXEC). Checked when credentials are saved (400) and again
before every new API client is built (the request is refused)."""
from django.conf import settings

from apps.core import netguard
from apps.core.errors import InvalidInput

PLUGIN_KEYS = ("exec", "auth-provider")


def cluster_access_check(*, api_url: str, kubeconfig: dict | None) -> None:
    """Raise InvalidInput (UnsafeDestination for addresses) naming what is refused and how to fix it."""
    if kubeconfig is not None:
        if not settings.KUBECONFIG_ALLOW_EXEC:
            for user in kubeconfig.get("users") or []:
                entry = (user or {}).get("user") or {}
                for key in PLUGIN_KEYS:
                    if entry.get(key):
                        raise InvalidInput(
                            f"The kubeconfig user '{user.get('name', '')}' uses '{key}', which would run a command "
                            "or plugin on the control plane's hosts. Give a token or client certificate instead; a "
                            "platform admin can allow plugins with KUBECONFIG_ALLOW_EXEC.",
                            fields={"kubeconfig": [f"'{key}' is not allowed."]})
        for entry in kubeconfig.get("clusters") or []:
            cluster = (entry or {}).get("cluster") or {}
            for key in ("server", "proxy-url"):
                if cluster.get(key):
                    netguard.check_url(str(cluster[key]), field="kubeconfig", unresolvable_ok=True)
    if api_url:
        # A name that does not resolve reaches nothing (the connection then fails as unreachable).
        netguard.check_url(api_url, field="api_url", unresolvable_ok=True)
