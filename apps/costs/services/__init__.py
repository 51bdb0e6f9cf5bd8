"""Writes for the costs app, one module per concern: lookups, the allocation ledger, admission and
reservations (its docstring has the admission semantics), the catalog with quotas and budgets, node tokens.
The names are re-exported here so callers import `apps.costs.services` as before (the API serializer uses
`_in_use` too). Patch a name in the submodule that looks it up, not here."""
from __future__ import annotations

from .lookups import _in_use, cluster_resolve, gpu_type_resolve, month_start, price_at
from .allocations import allocation_start, allocation_stop, allocations_stop_for
from .admission import (HOURS_PER_MONTH, AdmissionDecision, admission_check, admission_require, admission_reserve,
                        allocation_start_reserved, reservations_expire, reservations_release, reservations_running)
from .catalog import (budget_set, gpu_price_set, gpu_type_create, gpu_type_delete, gpu_type_set_archived, quota_set,
                      resource_rate_set)
from .node_tokens import (MAX_NODE_GPUS, NODE_TOKEN_PREFIX, node_samples_check, node_token_create, node_token_revoke,
                          node_token_verify)
