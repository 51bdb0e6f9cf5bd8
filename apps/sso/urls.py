from django.urls import path

from . import views

urlpatterns = [
    path("login", views.OidcLoginView.as_view(), name="login"),
    path("callback", views.OidcCallbackView.as_view(), name="callback"),
    path("no-team", views.no_team, name="no-team"),
    path("mappings", views.mapping_page, name="mappings"),
    path("mappings/create", views.mapping_create, name="mapping-create"),
    path("mappings/<int:mapping_id>/delete", views.mapping_delete, name="mapping-delete"),
    path("service-accounts", views.service_account_page, name="service-accounts"),
    path("service-accounts/create", views.service_account_create, name="service-account-create"),
    path("service-accounts/<int:account_id>/tokens/create", views.service_account_token_create,
         name="service-account-token-create"),
    path("service-accounts/<int:account_id>/tokens/<int:token_id>/revoke", views.service_account_token_revoke,
         name="service-account-token-revoke"),
    path("service-accounts/<int:account_id>/deactivate", views.service_account_deactivate,
         name="service-account-deactivate"),
]
