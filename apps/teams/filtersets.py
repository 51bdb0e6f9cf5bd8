import django_filters

from .models import Membership, WebhookEndpoint


class MembershipFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    username = django_filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["team", "username", "role"]


class WebhookEndpointFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")

    class Meta:
        model = WebhookEndpoint
        fields = ["team", "active"]
