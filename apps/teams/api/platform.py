"""/api/v1/platform/: platform-wide settings that platform admins edit at run time."""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from apps.core.api.serializers import StrictInputSerializer
from apps.core.api.views import ScopedViewSet
from apps.core.models import AllowedNetwork
from apps.teams import allowed_networks


class AllowedNetworkSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = AllowedNetwork
        fields = ["id", "cidr", "reason", "created_by", "created_at"]


class AllowedNetworkCreateSerializer(StrictInputSerializer):
    cidr = serializers.CharField(max_length=50, help_text="e.g. 10.20.0.0/16; a single address as /32 or /128")
    reason = serializers.CharField(max_length=200)


class AllowedNetworkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Ranges the SSRF guard lets webhooks and cluster connections reach, besides SSRF_ALLOWED_CIDRS."""

    serializer_class = AllowedNetworkSerializer
    capabilities = {"list": "platform_admin", "retrieve": "platform_admin", "create": "platform_admin",
                    "destroy": "platform_admin"}
    http_method_names = ["get", "post", "delete", "head", "options"]

    def select(self, *, user):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no platform admin
            return AllowedNetwork.objects.none()
        return allowed_networks.allowed_network_list(user=user)

    @extend_schema(request=AllowedNetworkCreateSerializer, responses={201: AllowedNetworkSerializer})
    def create(self, request):
        data = AllowedNetworkCreateSerializer.validated(request.data)
        network = allowed_networks.allowed_network_add(actor=request.user, **data)
        return Response(AllowedNetworkSerializer(network).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        allowed_networks.allowed_network_remove(actor=request.user, network=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


router = SimpleRouter()
router.register("allowed-networks", AllowedNetworkViewSet, basename="allowed-network")
urlpatterns = router.urls
