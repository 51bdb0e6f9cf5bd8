from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("monitors/new/", views.monitor_new, name="monitor-new"),
    path("monitors/<int:monitor_id>/", views.monitor_detail, name="monitor"),
    path("monitors/<int:monitor_id>/schema/", views.reference_schema, name="reference-schema"),
    path("monitors/<int:monitor_id>/<str:verb>/", views.monitor_action, name="monitor-action"),
    path("alerts/<int:alert_id>/", views.alert_detail, name="alert"),
    path("alerts/<int:alert_id>/<str:verb>/", views.alert_action, name="alert-action"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/report/", views.run_report, name="run-report"),
    path("runs/<int:run_id>/full-report/", views.run_full_report, name="run-full-report"),
    path("runs/<int:run_id>/retry/", views.run_retry, name="run-retry"),
]
