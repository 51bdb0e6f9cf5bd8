from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("clusters", views.ClusterViewSet, basename="deployments-cluster")
router.register("namespaces", views.NamespaceViewSet, basename="deployments-namespace")
router.register("deployments", views.DeploymentViewSet, basename="deployments-deployment")
router.register("revisions", views.RevisionViewSet, basename="deployments-revision")
router.register("jobs", views.JobViewSet, basename="deployments-job")

urlpatterns = router.urls
