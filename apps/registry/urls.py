from django.urls import path, re_path

from . import views

app_name = "registry"
urlpatterns = [
    path("", views.index, name="index"),
    path("sync/", views.sync_now, name="sync"),
    path("sync/<int:pk>/retry/", views.sync_retry, name="sync-retry"),
    path("models/<int:pk>/", views.model_detail, name="model"),
    path("models/<int:pk>/assign-team/", views.model_assign_team, name="model-assign-team"),
    path("models/<int:pk>/revoke-alias/", views.model_revoke_alias, name="model-revoke-alias"),
    path("models/<int:pk>/alias-history/export/", views.alias_history_export, name="alias-history-export"),
    path("versions/<int:pk>/", views.version_detail, name="version"),
    path("versions/<int:pk>/request-promotion/", views.version_request_promotion, name="request-promotion"),
    path("inbox/", views.inbox, name="inbox"),
    path("requests/<int:pk>/", views.request_detail, name="request"),
    re_path(r"^requests/(?P<pk>\d+)/(?P<verb>approve|reject|cancel|override|retry-publish)/$", views.request_action,
            name="request-action"),
    path("policies/", views.policies, name="policies"),
    path("policies/new/", views.policy_create, name="policy-create"),
    path("policies/<int:pk>/", views.policy_update, name="policy-update"),
    path("policies/floors/<int:pk>/", views.floor_update, name="floor-update"),
]
