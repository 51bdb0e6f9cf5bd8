"""Filter values are checked, never ignored: `?status=bogus` answers 400 naming the allowed values, instead of
an empty 200 that reads as "there is nothing". Used by every list, through django-filter FilterSets or, for
lists filtered by hand, `choice_param`."""
from django_filters import ChoiceFilter, MultipleChoiceFilter
from django_filters.rest_framework import DjangoFilterBackend

from apps.core.errors import InvalidInput


def _allowed(filter_) -> list[str]:
    return [str(value) for value, _label in filter_.field.choices if value not in ("", None)]


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            fields = {}
            for name, errors in filterset.errors.items():
                filter_ = filterset.filters.get(name)
                if isinstance(filter_, (ChoiceFilter, MultipleChoiceFilter)):
                    value = request.query_params.get(name, "")[:100]
                    fields[name] = [f"'{value}' is not one of: {', '.join(_allowed(filter_))}."]
                else:
                    fields[name] = [str(error) for error in errors]
            raise InvalidInput("Invalid filter. " + "; ".join(f"{name}: {' '.join(messages)}"
                                                             for name, messages in fields.items()), fields=fields)
        return filterset.qs


def choice_param(request, name: str, allowed) -> str | None:
    """The query parameter `name` if it is one of `allowed` (absent or empty: None); anything else is a 400."""
    value = request.query_params.get(name)
    if not value:
        return None
    allowed = [str(choice) for choice in allowed]
    if value not in allowed:
        raise InvalidInput(f"Invalid filter. {name}: '{value[:100]}' is not one of: {', '.join(allowed)}.",
                           fields={name: [f"One of: {', '.join(allowed)}."]})
    return value
