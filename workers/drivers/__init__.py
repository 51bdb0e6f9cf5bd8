"""Cluster drivers: one interface (base.Driver), a `local` driver and a `kubernetes` driver, given plain
data (spec.py). The control plane chooses and builds them (apps.deployments.drivers)."""
from .base import ApplyFailed, ConnectionCheck, Driver, DriverUnavailable, Observed, WaitInterrupted
from .spec import (ClusterConnection, DeploymentSpec, JobSpec, KubeCredentials, KubernetesConfig, LocalConfig,
                   ProcessRecord, ProcessStore, RevisionSpec)

__all__ = ["ApplyFailed", "ClusterConnection", "ConnectionCheck", "DeploymentSpec", "Driver", "DriverUnavailable",
           "JobSpec", "KubeCredentials", "KubernetesConfig", "LocalConfig", "Observed", "ProcessRecord",
           "ProcessStore", "RevisionSpec", "WaitInterrupted"]
