"""Demo data for `make run`: users, two teams with every role, and a registered model in MLflow.

Idempotent: what already exists is reported as found and left alone (a password or role changed
since is not reset). Teams and memberships go through the team services, so the audit log shows
them like any other change, made by the platform admin.
"""
import functools
import hashlib
import time
import warnings
from collections.abc import Callable

import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from apps.teams.choices import PlatformRole
from apps.teams.models import Membership, PlatformRoleGrant, Team
from apps.teams.services import membership_add, platform_role_grant, team_create

DEMO_PASSWORD = "demo-pass-2026"
ADMIN_USERNAME = "admin"
FINANCE_USERNAME = "fiona"  # the finance role: reads every team's costs, in no team
# (slug, name, [(username, role), ...]). scripts/devstack.py prints the same logins after `make run`;
# tests/demo/test_seed_demo.py checks the two agree.
TEAMS = [
    ("fraud", "Fraud detection", [("alice", "team_admin"), ("bob", "approver"), ("carol", "approver"),
                                  ("dave", "ml_engineer"), ("vera", "viewer")]),
    ("search", "Search ranking", [("sam", "team_admin"), ("erin", "ml_engineer")]),
]

MODEL_NAME = "fraud-classifier"
MODEL_TEAM = "fraud"
EXPERIMENT_NAME = "fraud-classifier"
# One entry per registered version, in version order. The stronger regularisation of version 1
# makes it measurably worse (accuracy ~0.94 against ~0.99), so promoting version 2 is an improvement.
MODEL_VERSIONS = [{"C": 0.01}, {"C": 1.0}]
RANDOM_STATE = 42
TEST_SIZE = 0.25
# fairness_gap compares accuracy between two groups of patients; the data set has no demographic
# column, so the groups are large and small tumours (mean area against the training median).
FAIRNESS_GROUP_FEATURE = "mean area"

Log = Callable[[str], None]


def _report(log: Log, created: bool, what: str) -> None:
    log(f"  {'created' if created else 'found'.ljust(7)}  {what}")


@functools.cache
def _password_hash() -> str:
    """The demo password hashed once for every demo user (the hasher takes ~0.4 s by design: 4 s of the seed for
    ten users); they share one published password, so one hash hides nothing more."""
    return make_password(DEMO_PASSWORD)


def _user_create(username: str, **fields):
    user = get_user_model()(username=username, email=f"{username}@example.test", password=_password_hash(), **fields)
    user.save()
    return user


@transaction.atomic
def seed_accounts(*, log: Log) -> None:
    User = get_user_model()
    admin = User.objects.filter(username=ADMIN_USERNAME).first()
    _report(log, admin is None, f"user {ADMIN_USERNAME} (platform admin)")
    if admin is None:
        admin = _user_create(ADMIN_USERNAME, is_staff=True, is_superuser=True)

    for slug, name, members in TEAMS:
        team = Team.objects.filter(slug=slug).first()
        _report(log, team is None, f"team {slug} ({name})")
        if team is None:
            team = team_create(actor=admin, slug=slug, name=name)
        for username, role in members:
            user = User.objects.filter(username=username).first()
            _report(log, user is None, f"user {username}")
            if user is None:
                _user_create(username, first_name=username.title())
            membership = Membership.objects.filter(team=team, user__username=username).first()
            if membership is None:
                membership_add(actor=admin, team=team, username=username, role=role)
            _report(log, membership is None,
                    f"membership {username} in {slug} as {membership.role if membership else role}")

    finance = User.objects.filter(username=FINANCE_USERNAME).first()
    _report(log, finance is None, f"user {FINANCE_USERNAME}")
    if finance is None:
        finance = _user_create(FINANCE_USERNAME, first_name=FINANCE_USERNAME.title())
    granted = PlatformRoleGrant.objects.filter(user=finance, role=PlatformRole.FINANCE).exists()
    if not granted:
        platform_role_grant(actor=admin, username=FINANCE_USERNAME, role=PlatformRole.FINANCE)
    _report(log, not granted, f"platform role finance for {FINANCE_USERNAME}")

    from apps.costs.demo import seed_costs  # GPU catalog, quotas, a month of usage, budgets (apps/costs/demo.py)

    log("Demo GPU costs:")
    seed_costs(log=log)


def fake_commit(version: int) -> str:
    """A stable 40-hex sha standing in for the commit the demo model was trained from."""
    return hashlib.sha1(f"{MODEL_NAME}@v{version}".encode()).hexdigest()


def seed_mlflow(*, tracking_uri: str, log: Log) -> None:
    # MLflow costs over a second to import; only the seed pays for it.
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=5).raise_for_status()
    except requests.RequestException as exc:
        raise RuntimeError(f"MLflow at {tracking_uri} is not reachable ({exc}); start it or set "
                           f"MLFLOW_TRACKING_URI.") from exc

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.get_registered_model(MODEL_NAME)
        created = False
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(
            MODEL_NAME, tags={"team": MODEL_TEAM},
            description="Flags card transactions for review (demo: logistic regression on the breast cancer data set).",
        )
        created = True
    client.set_registered_model_tag(MODEL_NAME, "team", MODEL_TEAM)
    _report(log, created, f"MLflow registered model {MODEL_NAME} (team={MODEL_TEAM})")

    existing = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    for number in range(1, len(MODEL_VERSIONS) + 1):
        if number <= existing:
            _report(log, False, f"MLflow {MODEL_NAME} version {number}")
            continue
        registered = _train_and_register(tracking_uri=tracking_uri, number=number, **MODEL_VERSIONS[number - 1])
        _report(log, True, f"MLflow {MODEL_NAME} version {registered}")

    from apps.deployments.demo import seed_deployment
    from apps.registry.demo import promote_to_production, seed_registry

    # The story: v1 reaches production (a gate overridden) and is served; v2 passes every gate, replaces
    # it through a canary, and "Roll back" can bring v1 back.
    log("Demo registry (sync, approval policies, v1 → production):")
    seed_registry(log=log)
    log("Demo deployment of v1 (local target):")
    seed_deployment(log=log, version_number=1)
    log("Demo promotion of v2:")
    promote_to_production(log=log, version_number=2)
    log("Demo canary rollout of v2:")
    seed_deployment(log=log, version_number=2)

    # After the deployment, so the drift monitor is linked to it (its alert's "Roll back" acts on it).
    from apps.monitoring.demo import seed_monitoring  # a week of prediction logs drifting mid-week, runs, an open alert

    log("Demo drift monitoring:")
    seed_monitoring(log=log)

    from apps.costs.demo import link_serving_deployment  # the serving costs name the deployment and its predictions

    log("Demo serving costs:")
    link_serving_deployment(log=log)


def _train_and_register(*, tracking_uri: str, number: int, C: float) -> str:
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    import numpy as np
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # The fluent API (start_run, log_model) reads the process-wide tracking URI.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment(EXPERIMENT_NAME)

    frame = load_breast_cancer(as_frame=True).frame  # bundled with scikit-learn, no download
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=RANDOM_STATE, stratify=frame["target"])
    x_train, y_train = train.drop(columns="target"), train["target"]
    x_test, y_test = test.drop(columns="target"), test["target"]

    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=RANDOM_STATE))
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)

    large = (x_test[FAIRNESS_GROUP_FEATURE] >= x_train[FAIRNESS_GROUP_FEATURE].median()).to_numpy()
    group_accuracy = [accuracy_score(y_test[group], predicted[group]) for group in (large, ~large)]
    latencies = []
    for i in range(len(x_test)):
        started = time.perf_counter()
        model.predict(x_test.iloc[[i]])
        latencies.append((time.perf_counter() - started) * 1000)

    commit = fake_commit(number)
    with warnings.catch_warnings(), mlflow.start_run(run_name=f"{MODEL_NAME}-v{number}-C{C:g}",
                          tags={"mlflow.source.git.commit": commit, "team": MODEL_TEAM}):
        # MLflow hints that integer columns can't hold missing values; the class labels never miss.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer", category=UserWarning)
        mlflow.log_params({
            "model": "LogisticRegression", "C": C, "penalty": "l2", "max_iter": 1000, "scaler": "StandardScaler",
            "test_size": TEST_SIZE, "random_state": RANDOM_STATE, "n_features": x_train.shape[1],
            "fairness_group": f"{FAIRNESS_GROUP_FEATURE} >= training median",
        })
        mlflow.log_metrics({
            "accuracy": float(accuracy_score(y_test, predicted)),
            "f1": float(f1_score(y_test, predicted)),
            "latency_p95_ms": round(float(np.percentile(latencies, 95)), 3),
            "fairness_gap": round(abs(group_accuracy[0] - group_accuracy[1]), 4),
        })
        mlflow.log_input(mlflow.data.from_pandas(train, name="breast-cancer", targets="target"), context="training")
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(x_train, model.predict(x_train)),
            registered_model_name=MODEL_NAME,
            # Explicit requirements: inferring them loads the model in a subprocess, slow for a demo.
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"],
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).update_model_version(
        MODEL_NAME, version, description=f"Logistic regression, C={C:g}, trained at commit {commit[:12]}.")
    return version
