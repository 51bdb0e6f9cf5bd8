"""SSO writes, by concern: the login and its reconciliation, group mappings, service accounts."""
from .login import ROLE_PRECEDENCE, claimed_groups, memberships_reconcile, sso_login
from .mappings import group_mapping_create, group_mapping_delete
from .service_accounts import (service_account_create, service_account_deactivate, service_account_token_create,
                               service_account_token_revoke)

__all__ = ["ROLE_PRECEDENCE", "claimed_groups", "group_mapping_create", "group_mapping_delete",
           "memberships_reconcile", "service_account_create", "service_account_deactivate",
           "service_account_token_create", "service_account_token_revoke", "sso_login"]
