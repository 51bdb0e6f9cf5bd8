"""Every UI route, as the page benchmark (`bench/pages/run.py`) requests it.

`PAGES` are the routes a browser GETs, each with the path to time (filled from the ids of seeded objects, see
`run.py`). `NOT_TIMED` are the other routes of the UI URL conf, each with why it is not a page to time. The smoke
test `tests/core/test_bench_pages_cover_ui.py` fails when a UI route is in neither, so a new page can't be forgotten.
"""

# (url name, path template, what the page shows). Templates are formatted with the ids `run.py` looks up.
PAGES = [
    ("home", "/", "dashboard"),
    ("login", "/login/", "login form (anonymous)"),
    ("registry:index", "/registry/", "registered models"),
    ("registry:model", "/registry/models/{model}/", "model detail"),
    ("registry:alias-history-export", "/registry/models/{model}/alias-history/export/", "alias history CSV"),
    ("registry:version", "/registry/versions/{version}/", "model version detail"),
    ("registry:inbox", "/registry/inbox/", "approvals inbox"),
    ("registry:request", "/registry/requests/{promotion}/", "promotion request"),
    ("registry:policies", "/registry/policies/", "approval policies"),
    ("deployments:index", "/deployments/", "deployments list"),
    ("deployments:wizard_new", "/deployments/new/", "wizard, step 1"),
    ("deployments:wizard", "/deployments/drafts/{draft}/step/1/", "wizard, a draft's step"),
    ("deployments:clusters", "/deployments/clusters/", "clusters"),
    ("deployments:detail", "/deployments/{deployment}/", "deployment detail"),
    ("deployments:status", "/deployments/{deployment}/status.json", "live status (polled)"),
    ("monitoring:index", "/monitoring/", "monitors overview"),
    ("monitoring:monitor", "/monitoring/monitors/{monitor}/", "drift dashboard"),
    ("monitoring:alert", "/monitoring/alerts/{alert}/", "alert"),
    ("monitoring:run", "/monitoring/runs/{run}/", "run report page (summaries)"),
    ("monitoring:run-report", "/monitoring/runs/{run}/report/", "drift run report"),
    ("costs:index", "/costs/", "costs and budgets"),
    ("costs:index", "/costs/?group_by=model,deployment", "costs, model × deployment"),
    ("costs:index", "/costs/?month={last_month}", "costs, last month (the seeds' 30 days)"),
    ("costs:quotas", "/costs/quotas/", "GPU quotas"),
    ("costs:nodes", "/costs/nodes/", "cost agent nodes"),
    ("audit:index", "/audit/", "audit log"),
    ("audit:export", "/audit/export", "audit export"),
    ("teams:settings", "/settings/", "team settings"),
    ("sso:no-team", "/sso/no-team", "signed in without a team"),
    ("sso:mappings", "/sso/mappings", "SSO group mappings"),
    ("sso:service-accounts", "/sso/service-accounts", "service accounts"),
]

ACTION = "POST-only action (answers 405 to GET)"
NOT_TIMED = {
    "logout": ACTION,
    "sso:login": "redirect to the OIDC provider (none configured here)",
    "sso:callback": "OIDC callback (needs a provider's code)",
    **{name: ACTION for name in (
        "registry:sync", "registry:sync-retry", "registry:model-assign-team", "registry:model-revoke-alias",
        "registry:request-promotion", "registry:request-action", "registry:policy-create", "registry:policy-update",
        "registry:floor-update",
        "deployments:wizard_submit", "deployments:job-retry", "deployments:control",
        "monitoring:monitor-new", "monitoring:reference-schema", "monitoring:monitor-action",
        "monitoring:alert-action", "monitoring:run-full-report", "monitoring:run-retry",
        "costs:month_close", "costs:rollup_retry",
        "teams:switch", "teams:membership-add", "teams:membership-role", "teams:membership-remove",
        "teams:token-create", "teams:token-revoke", "teams:webhook-create", "teams:webhook-delete",
        "teams:webhook-rotate-secret", "teams:webhook-retry-notifications", "teams:outbox-requeue",
        "sso:mapping-create", "sso:mapping-delete", "sso:service-account-create",
        "sso:service-account-token-create", "sso:service-account-token-revoke", "sso:service-account-deactivate",
    )},
}
