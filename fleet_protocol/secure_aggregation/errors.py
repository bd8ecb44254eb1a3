"""Errors of secure aggregation (a `FederationError`, so services count them by reason)."""

from __future__ import annotations

from fleet_protocol.errors import FederationError


class SecureAggregationError(FederationError):
    """A phase cannot proceed: too few devices, a bad share, a value out of range."""

    reason = "secure_aggregation"
