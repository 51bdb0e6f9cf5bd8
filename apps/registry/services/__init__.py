"""Every registry write: keyword-only, one transaction each, audited in that transaction; one module per
concern (sync requests and ownership, approval policies, the promotion workflow). The names are re-exported
here so callers import `apps.registry.services` as before. Patch a name in the submodule that looks it up."""
from .policies import (policy_create, policy_delete, policy_floor_create, policy_floor_update,
                       policy_update)
from .promotions import (APPROVAL_TAG, APPROVERS_TAG, NO_POLICY, PUBLISH_KIND, PUBLISH_TOPIC, alias_revoke,
                         promotion_approve, promotion_cancel, promotion_decision_refusal, promotion_override,
                         promotion_publish, promotion_publish_gave_up, promotion_reject, promotion_request,
                         promotion_retry_publish, promotions_expire)
from .sync_requests import (SYNC_KIND, SYNC_TOPIC, model_assign_team, sync_request, sync_retry, sync_run_now,
                            sync_run_scheduled, team_tag_warning)
