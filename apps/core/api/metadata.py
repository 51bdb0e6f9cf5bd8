"""OPTIONS answers: DRF's description of a view. Without the input form where DRF would fail building it (500):
views that declare no serializer, and objects our base viewset reports missing with a DomainError (not Http404)."""
from rest_framework.metadata import SimpleMetadata

from apps.core.errors import DomainError


class ApiMetadata(SimpleMetadata):
    def determine_actions(self, request, view):
        from rest_framework.generics import GenericAPIView  # rest_framework.views loads this module while importing

        declares_serializer = getattr(view, "serializer_class", None) is not None or \
            type(view).get_serializer_class is not GenericAPIView.get_serializer_class
        if not declares_serializer:
            return {}
        try:
            return super().determine_actions(request, view)
        except DomainError:
            return {}
