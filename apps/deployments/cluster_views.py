"""UI: cluster administration for platform admins (register a cluster, test its connection, set its Gateway,
assign team namespaces)."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from apps.core.errors import DomainError

from . import selectors, services
from .choices import ClusterKind
from .models import Cluster
from .views import _environments


@login_required
def clusters(request):
    if not request.user.is_superuser:
        messages.error(request, "Only platform admins manage clusters.")
        return redirect("deployments:index")
    from apps.teams.models import Team

    if request.method == "POST":
        form = request.POST
        try:
            if form.get("action") == "create":
                services.cluster_create(actor=request.user, name=form.get("name", ""), kind=form.get("kind", ""),
                                        description=form.get("description", ""), api_url=form.get("api_url", ""),
                                        kubeconfig=form.get("kubeconfig") or None, token=form.get("token") or None,
                                        ca_cert=form.get("ca_cert") or None)
                messages.success(request, f"Cluster {form.get('name')} added.")
            elif form.get("action") == "test":
                cluster = services.cluster_test_connection(actor=request.user,
                                                           cluster=Cluster.objects.get(pk=form.get("cluster")))
                (messages.success if cluster.last_check_ok else messages.error)(
                    request, f"{cluster.name}: {cluster.last_check_message}")
            elif form.get("action") == "gateway":
                cluster = services.cluster_set_gateway(actor=request.user, gateway=form.get("gateway", ""),
                                                       cluster=Cluster.objects.get(pk=form.get("cluster")))
                messages.success(request, f"{cluster.name}: Gateway "
                                          f"{cluster.gateway_namespace + '/' + cluster.gateway_name if cluster.gateway_name else 'unset'}.")
            elif form.get("action") == "namespace":
                from apps.registry.models import Environment

                services.cluster_namespace_create(
                    actor=request.user, cluster=Cluster.objects.get(pk=form.get("cluster")),
                    team=Team.objects.get(slug=form.get("team")),
                    environment=Environment.objects.get(name=form.get("environment")), namespace=form.get("namespace", ""))
                messages.success(request, f"Namespace {form.get('namespace')} assigned.")
        except DomainError as exc:
            messages.error(request, exc.message)
        except (Cluster.DoesNotExist, Team.DoesNotExist) as exc:
            messages.error(request, str(exc))
        return redirect("deployments:clusters")
    return render(request, "deployments/clusters.html", {
        "clusters": selectors.cluster_list(user=request.user).prefetch_related("namespaces__team",
                                                                                "namespaces__environment"),
        "teams": Team.objects.all(), "environments": _environments(), "kinds": ClusterKind.choices,
    })
