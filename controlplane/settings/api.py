REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.teams.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated",
                                   "apps.teams.permissions.ReadScopeIsReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.DefaultPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["apps.core.api.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["apps.core.api.parsers.StrictJSONParser"],
    "DEFAULT_METADATA_CLASS": "apps.core.api.metadata.ApiMetadata",
    # `?format=` selects an export format (csv/jsonl), not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ML control plane API",
    "DESCRIPTION": "Governed promotion, deployment, GPU quota, cost and drift for models in an MLflow registry.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "apps.core.api.schema.add_error_responses",
                             "apps.core.api.idempotency.add_idempotency_header"],
    # Choice sets used by several fields get one name (`check --deploy` runs the schema generator and
    # reports a guessed name as a warning).
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "apps.teams.choices.Role",
        "PlatformRoleEnum": "apps.teams.choices.PlatformRole",
        "ClusterKindEnum": "apps.deployments.choices.ClusterKind",
        "MonitorStateEnum": "apps.monitoring.choices.MonitorState",
    },
}
