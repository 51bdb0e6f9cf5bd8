"""Every write of the deployments app, one module per concern. Keyword-only, atomic, capability-checked,
audited; cluster work is the runner's rollout drive (rollout.py), due once a service bumps the desired generation.

The names are re-exported here so callers import `apps.deployments.services` as before (review.py and
artifact_check.py use two helpers too). Patch a name in the submodule that looks it up, not here."""
from .clusters import (cluster_connection, cluster_create, cluster_credentials, cluster_delete, cluster_namespace_create,
                       cluster_set_archived, cluster_set_credentials, cluster_set_gateway, cluster_test_connection,
                       credentials_rotate, job_namespace, namespace_for)
from .deployments import (NAME_RE, _check_cluster_strategy, _desired_changed, deployment_abort, deployment_create,
                          deployment_deploy, deployment_pause, deployment_promote, deployment_reapply, deployment_resume,
                          deployment_retry, deployment_rollback, deployment_teardown)
from .drafts import DRAFT_FIELDS, draft_save, draft_submit
from .jobs import JOB_TOPIC, job_dispatch, job_retry
