"""Cluster drivers: one interface (base.Driver), a `local` driver and a `kubernetes` driver."""
from .base import ApplyFailed, Driver, DriverUnavailable, driver_for

__all__ = ["ApplyFailed", "Driver", "DriverUnavailable", "driver_for"]
