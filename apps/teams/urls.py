from django.urls import path

from . import views

urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("switch-team", views.switch_team, name="switch"),
    path("members/add", views.membership_add, name="membership-add"),
    path("members/<int:membership_id>/role", views.membership_change_role, name="membership-role"),
    path("members/<int:membership_id>/remove", views.membership_remove, name="membership-remove"),
    path("tokens/create", views.token_create, name="token-create"),
    path("tokens/<int:token_id>/revoke", views.token_revoke, name="token-revoke"),
    path("webhooks/create", views.webhook_create, name="webhook-create"),
    path("webhooks/<int:webhook_id>/delete", views.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:webhook_id>/rotate-secret", views.webhook_rotate_secret, name="webhook-rotate-secret"),
    path("webhooks/<int:webhook_id>/retry-notifications", views.webhook_retry_notifications,
         name="webhook-retry-notifications"),
    path("outbox/<uuid:message_id>/requeue", views.outbox_message_requeue, name="outbox-requeue"),
]
