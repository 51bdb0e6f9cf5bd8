from django.urls import path

from . import cluster_views, views

app_name = "deployments"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.wizard, name="wizard_new"),
    path("drafts/<int:draft_id>/step/<int:step>/", views.wizard, name="wizard"),
    path("drafts/<int:draft_id>/submit/", views.wizard_submit, name="wizard_submit"),
    path("clusters/", cluster_views.clusters, name="clusters"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="job-retry"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/status.json", views.status_json, name="status"),
    path("<int:pk>/<str:verb>/", views.control, name="control"),
]
