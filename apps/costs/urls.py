from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("quotas/", views.quotas, name="quotas"),
    path("nodes/", views.nodes, name="nodes"),
    path("months/<str:month>/close/", views.month_close, name="month_close"),
    path("rollups/<int:pk>/retry/", views.rollup_retry, name="rollup_retry"),
]
