"""Page-number pagination that says what is wrong with a page request instead of guessing.

DRF answers `?page=0` or `?page=abc` with 404 "Invalid page." and quietly replaces a bad `page_size` with the
default; a client then can't tell a typo from an empty result. Here a malformed page or page size is a 400
naming the parameter, and a page past the last one is a 404 that says how many pages there are."""
from rest_framework.pagination import PageNumberPagination

from apps.core.errors import InvalidInput, NotFound


def _positive_int(request, name: str, *, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"{name}: '{raw[:50]}' is not a positive whole number.", fields={name: ["Must be ≥ 1."]})
    value = int(raw)
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{name}: {value} is more than the maximum of {maximum}.",
                           fields={name: [f"Must be ≤ {maximum}."]})
    return value


class DefaultPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        return _positive_int(request, self.page_size_query_param, maximum=self.max_page_size) or self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        number = _positive_int(request, self.page_query_param) or 1
        page_size = self.get_page_size(request)
        if not page_size:
            return None
        paginator = self.django_paginator_class(queryset, page_size)
        if number > max(paginator.num_pages, 1):
            raise NotFound(f"Page {number} is past the last page ({max(paginator.num_pages, 1)}).",
                           extra={"pages": paginator.num_pages})
        self.page = paginator.page(number)
        self.request = request
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        return list(self.page)
