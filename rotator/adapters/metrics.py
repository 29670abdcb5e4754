"""Prometheus metrics, on an injected registry so every test gets a fresh one.

Labels are bounded: key name, account name, sub UID, endpoint path, Bybit retCode, state. Never a
key id (unbounded over time) or anything secret. Every metric is documented in docs/metrics.md.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from rotator import __version__

if TYPE_CHECKING:
    from datetime import datetime

KEY_LABELS = ("key", "account", "sub_uid")

# Every state a managed key can be in; exactly one is 1 in rotator_key_state at a time.
KEY_STATES = (
    "idle",  # active key, nothing in flight
    "planned",  # rotation recorded, nothing created yet
    "created",  # new key exists on Bybit, secret stored as pending
    "verified",  # new key checked against the spec
    "promoted",  # consumers read the new key
    "handed_off",  # hooks done; waiting out the grace period
    "revoking",  # deleting the old key
    "failed",  # the last attempt failed; retrying with backoff
    "escalated",  # will not make it before expiry without a human
)


class Metrics:
    """All of the daemon's metrics. One instance per registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("rotator_build", "Version of the running rotator.", registry=r)
        self.build_info.info({"version": __version__})

        # ---- per managed key
        self.key_expiry = Gauge(
            "rotator_key_expiry_timestamp_seconds",
            "When the key consumers use expires (Unix time); +Inf if it never expires.",
            KEY_LABELS,
            registry=r,
        )
        self.key_next_renewal = Gauge(
            "rotator_key_next_renewal_timestamp_seconds",
            "When the key's next rotation step is due (Unix time).",
            KEY_LABELS,
            registry=r,
        )
        self.key_state = Gauge(
            "rotator_key_state",
            "1 for the key's current rotation state, 0 for the others.",
            (*KEY_LABELS, "state"),
            registry=r,
        )
        self.key_last_rotation = Gauge(
            "rotator_key_last_rotation_timestamp_seconds",
            "When the key's last rotation completed (Unix time); 0 if never.",
            KEY_LABELS,
            registry=r,
        )
        self.key_escalated = Gauge(
            "rotator_key_escalated",
            "1 if the key will expire before it can be rotated without a human.",
            KEY_LABELS,
            registry=r,
        )
        self.rotation_attempts = Counter(
            "rotator_rotation_attempts",
            "Rotation steps attempted.",
            KEY_LABELS,
            registry=r,
        )
        self.rotation_failures = Counter(
            "rotator_rotation_failures",
            "Rotation steps that failed, by class of failure.",
            (*KEY_LABELS, "reason"),
            registry=r,
        )
        self.rotations_completed = Counter(
            "rotator_rotations_completed",
            "Rotations completed (old key revoked).",
            KEY_LABELS,
            registry=r,
        )
        self.handoff_failures = Counter(
            "rotator_handoff_failures",
            "Hand-off hooks that failed.",
            (*KEY_LABELS, "hook"),
            registry=r,
        )

        # ---- per account
        self.master_key_expiry = Gauge(
            "rotator_master_key_expiry_timestamp_seconds",
            "When the account's master key expires (Unix time); +Inf if it never expires.",
            ("account",),
            registry=r,
        )
        self.password_change_detected = Gauge(
            "rotator_password_change_detected",
            "1 once a password change of the account was detected or declared.",
            ("account",),
            registry=r,
        )
        self.orphan_keys = Gauge(
            "rotator_orphan_keys",
            "Keys on Bybit tagged by the rotator but managed by no record.",
            ("account",),
            registry=r,
        )

        # ---- global
        self.last_reconcile_success = Gauge(
            "rotator_last_reconcile_success_timestamp_seconds",
            "When the last reconcile completed without a global failure (Unix time).",
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "rotator_reconcile_duration_seconds",
            "How long one reconcile took.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.bybit_requests = Counter(
            "rotator_bybit_requests",
            "HTTP requests sent to Bybit, by endpoint and retCode (or HTTP status class).",
            ("endpoint", "ret_code"),
            registry=r,
        )
        self.bybit_rate_limit_remaining = Gauge(
            "rotator_bybit_rate_limit_remaining",
            "Requests left in the current rate-limit window, as Bybit last reported it.",
            ("endpoint",),
            registry=r,
        )
        self.vault_errors = Counter(
            "rotator_vault_errors",
            "Vault operations that failed.",
            ("operation",),
            registry=r,
        )
        self.vault_up = Gauge(
            "rotator_vault_up",
            "1 if the last Vault probe succeeded (reachable, unsealed, authenticated).",
            registry=r,
        )
        self.bybit_up = Gauge(
            "rotator_bybit_up",
            "1 if the last Bybit probe succeeded.",
            registry=r,
        )

    # ---- helpers the daemon calls
    def set_key_state(self, key: str, account: str, sub_uid: int, state: str) -> None:
        if state not in KEY_STATES:
            raise ValueError(f"unknown state {state!r}")
        for s in KEY_STATES:
            self.key_state.labels(key, account, str(sub_uid), s).set(1 if s == state else 0)

    def remove_key(self, key: str, account: str, sub_uid: int) -> None:
        """Drop a key's series when it leaves the config (SIGHUP), so no stale alert fires."""
        labels = (key, account, str(sub_uid))
        for gauge in (
            self.key_expiry,
            self.key_next_renewal,
            self.key_last_rotation,
            self.key_escalated,
        ):
            _remove(gauge, labels)
        for s in KEY_STATES:
            _remove(self.key_state, (*labels, s))


def timestamp(when: datetime | None) -> float:
    """A datetime as a Prometheus timestamp; None (never) is +Inf."""
    return math.inf if when is None else when.timestamp()


def _remove(metric: Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
