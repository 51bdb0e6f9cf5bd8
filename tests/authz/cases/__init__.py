"""How to exercise each API route in the authorization matrix.

Each app adds a module here (`cases/<app>.py`) with a CASES dict keyed by route name; the matrix
test fails for a route without an entry. The expected outcome for each role comes from the view's
`capabilities` table and ROLE_CAPABILITIES, not from these entries.
"""
import importlib
import pkgutil

from .base import Case

CASES: dict[str, Case] = {}
for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        CASES.update(importlib.import_module(f"{__name__}.{_module.name}").CASES)

__all__ = ["CASES", "Case"]
