from rest_framework import mixins, viewsets

from apps.core.api.idempotency import IdempotentReplay, idempotency_begin, idempotency_finish
from apps.core.errors import NotFound


class ScopedViewSet(viewsets.GenericViewSet):
    """Base for every API viewset: rows come only from a selector that is given the user.

    Subclasses implement `select(user=...)` and may not override `get_queryset`, so no endpoint can
    forget team scoping (objects of other teams are simply not found). Writes go through services,
    which check the capability themselves; `capabilities` documents, per action, what the service
    requires, and the authorization matrix test holds the two to agreement.
    """

    # action -> capability in the object's team ("view", "operate", ...), "platform_admin", "self"
    # (the caller's own objects such as API tokens), "authenticated" (platform-wide rules every signed-in
    # user reads, such as policy floors), "costs_view" ("view" in the team, or any team for platform admins and the
    # finance role) or "finance" (platform admins and the finance role only).
    capabilities: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must implement select(user=...) instead of overriding get_queryset")

    def select(self, *, user):
        raise NotImplementedError

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions and throttles come first
        self._idempotency_record = idempotency_begin(request)

    def handle_exception(self, exc):
        if isinstance(exc, IdempotentReplay):
            return exc.response
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        record = getattr(self, "_idempotency_record", None)
        if record is not None:
            self._idempotency_record = None
            idempotency_finish(record, response)
        return super().finalize_response(request, response, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # Schema generation runs without a user, which platform-admin selectors refuse; it only
            # needs the model.
            model = getattr(getattr(self.get_serializer_class(), "Meta", None), "model", None)
            if model is not None:
                return model.objects.none()
        return self.select(user=self.request.user)

    def get_object(self):
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        queryset = self.filter_queryset(self.get_queryset())
        try:
            obj = queryset.get(**{self.lookup_field: lookup})
        except (queryset.model.DoesNotExist, ValueError, TypeError):
            raise NotFound(f"{queryset.model._meta.verbose_name.capitalize()} {lookup} not found.")
        self.check_object_permissions(self.request, obj)
        return obj


class ScopedReadOnlyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    pass
