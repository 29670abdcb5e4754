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
    from collections.abc import Iterable
    from datetime import datetime, timedelta

    from rotator.adapters.bybit import RequestObservation
    from rotator.rotation import KeyReport, ReconcileResult

KEY_LABELS = ("key", "account", "sub_uid")

# Every state a managed key can be in; exactly one is 1 in rotator_key_state at a time.
KEY_STATES = (
    "idle",  # active key, nothing in flight
    "planned",  # rotation recorded, nothing created yet
    "created",  # new key exists on Bybit, secret stored as pending
    "verified",  # new key checked against the spec
    "promoted",  # consumers read the new key
    "handed_off",  # hooks done; waiting out the grace period, then revoking the old key
    "awaiting_ack",  # grace over; the old key waits for the consumer's acknowledgement
    "failed",  # the last attempt failed; retrying with backoff
    "escalated",  # will not make it before expiry without a human
)
SCHEDULER_JOBS = ("reconcile", "due", "probe", "heartbeat")
SCHEDULER_EVENTS = ("error", "missed")
RELOAD_OUTCOMES = ("applied", "rejected")
# What rotator/adapters/vault.py names its operations (an unknown one still counts, from 1).
VAULT_OPERATIONS = ("read", "write", "destroy", "list", "login", "ping", "capabilities")


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
        self.key_drift = Gauge(
            "rotator_key_drift",
            "1 if the active key's permissions, IPs or readOnly on Bybit differ from the config.",
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
        self.password_change_timestamp = Gauge(
            "rotator_password_change_timestamp_seconds",
            "When the account's login password last changed, as detected or declared (Unix "
            "time); 0 if never.",
            ("account",),
            registry=r,
        )
        self.password_change_pending_keys = Gauge(
            "rotator_password_change_pending_keys",
            "Managed keys of the account that a password change forces to rotate and that are "
            "not yet replaced.",
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
        self.bybit_clock_offset = Gauge(
            "rotator_bybit_clock_offset_seconds",
            "Bybit's clock minus this host's, as last measured (signing is corrected by it).",
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

        # ---- the daemon itself
        self.leader = Gauge(
            "rotator_leader",
            "1 if this replica holds the account's lease and acts on it; 0 if it follows.",
            ("account",),
            registry=r,
        )
        self.account_run_seconds = Gauge(
            "rotator_account_run_seconds",
            "How long the account's current run has lasted; 0 when none runs (a hung account "
            "shows here, and in /readyz).",
            ("account",),
            registry=r,
        )
        self.scheduler_job_errors = Counter(
            "rotator_scheduler_job_errors",
            "Scheduled jobs that raised (event=error) or were skipped as too late (event=missed).",
            ("job", "event"),
            registry=r,
        )
        self.notifications = Counter(
            "rotator_notifications",
            "Chat notifications by channel, kind and outcome (sent, failed, suppressed).",
            ("channel", "kind", "outcome"),
            registry=r,
        )
        self.config_reloads = Counter(
            "rotator_config_reloads",
            "SIGHUP config reloads by outcome (applied, rejected).",
            ("outcome",),
            registry=r,
        )

        # key -> (account, awaits its forced rotation): per-account counts survive partial runs
        self._password_pending: dict[str, tuple[str, bool]] = {}

    # ---- helpers the daemon calls
    def declare(self, keys: Iterable[tuple[str, str, int]], accounts: Iterable[str]) -> None:
        """Create the series of these keys and accounts whose value is known before the first
        reconcile: per key the attempt and completion counters and the gauges whose 0 means
        "nothing wrong"; per account the orphan and pending-key gauges; the daemon's counters for
        every value of their closed label sets. Called at start and on each reload."""
        known = {g: _label_sets(g) for g in (self.key_escalated, self.key_drift)}
        for name, account, sub_uid in keys:
            labels = (name, account, str(sub_uid))
            self._declare_key(labels)
            for gauge, have in known.items():
                if labels not in have:
                    gauge.labels(*labels).set(0)
        seen = _label_sets(self.orphan_keys)
        for account in accounts:
            if (account,) not in seen:
                self.orphan_keys.labels(account).set(0)
                self._set_password_pending(account)
        for job in SCHEDULER_JOBS:
            for event in SCHEDULER_EVENTS:
                self.scheduler_job_errors.labels(job, event)
        for outcome in RELOAD_OUTCOMES:
            self.config_reloads.labels(outcome)
        for operation in VAULT_OPERATIONS:
            self.vault_errors.labels(operation)

    def _declare_key(self, labels: tuple[str, str, str]) -> None:
        # Not the failure counters per class and hook kind: 21 more series per key (x2 with
        # _created) would make a 10,000-key scrape ~5x larger (issue 13); the alert rules count a
        # failure series born within their window with its whole value instead.
        self.rotation_attempts.labels(*labels)
        self.rotations_completed.labels(*labels)

    def observe_clock_offset(self, offset: timedelta) -> None:
        """The offset the Bybit client measured (Bybit's clock minus ours)."""
        self.bybit_clock_offset.set(offset.total_seconds())

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
            self.key_drift,
        ):
            _remove(gauge, labels)
        gone = self._password_pending.pop(key, None)
        if gone is not None:
            self._set_password_pending(gone[0])
        for s in KEY_STATES:
            _remove(self.key_state, (*labels, s))
        for counter in (
            self.rotation_attempts,
            self.rotation_failures,
            self.rotations_completed,
            self.handoff_failures,
        ):
            for series in _label_sets(counter):
                if series[: len(labels)] == labels:
                    _remove(counter, series)

    def remove_account(self, account: str) -> None:
        """Drop an account's series when it leaves the config."""
        for gauge in (
            self.master_key_expiry,
            self.password_change_timestamp,
            self.password_change_pending_keys,
            self.orphan_keys,
            self.leader,
            self.account_run_seconds,
        ):
            _remove(gauge, (account,))

    def observe(self, result: ReconcileResult) -> None:
        """Feed one reconcile's result: per-key series, per-account series, run duration."""
        self.observe_state(result)
        self.reconcile_duration.observe(
            max((result.finished_at - result.started_at).total_seconds(), 0.0)
        )

    def observe_state(self, result: ReconcileResult) -> None:
        """The gauges only (a follower's view of the holder's snapshot): counters move only on
        what a report says happened in its run, and a snapshot's reports say nothing did."""
        for k in result.keys:
            self._observe_key(k)
        for a in result.accounts:
            if a.master_ok:
                self.master_key_expiry.labels(a.name).set(timestamp(a.master_expires_at))
                if a.orphans is not None:  # judged only by a full run of the account
                    self.orphan_keys.labels(a.name).set(len(a.orphans))
                changed = a.password_changed_at
                self.password_change_timestamp.labels(a.name).set(
                    changed.timestamp() if changed else 0.0
                )
            self._set_password_pending(a.name)

    def _observe_key(self, k: KeyReport) -> None:
        labels = (k.name, k.account, str(k.sub_uid))
        known = k.key_id is not None or k.expires_at is not None
        if known:  # a report of an unreadable account knows nothing about the expiry
            self.key_expiry.labels(*labels).set(timestamp(k.expires_at))
        if k.next_at is not None or known:
            self.key_next_renewal.labels(*labels).set(timestamp(k.next_at))
        if k.state in KEY_STATES:
            self.set_key_state(k.name, k.account, k.sub_uid, k.state)
        last = k.last_rotation_at.timestamp() if k.last_rotation_at else 0.0
        if known or last:
            self.key_last_rotation.labels(*labels).set(last)
        self.key_escalated.labels(*labels).set(1 if k.escalated else 0)
        if k.drift is not None:
            self.key_drift.labels(*labels).set(1 if k.drift else 0)
        if k.password_change_pending is not None:
            self._password_pending[k.name] = (k.account, k.password_change_pending)
        if k.step_attempted or k.completed or k.failure is not None:
            self.rotation_attempts.labels(*labels).inc()
        if k.failure is not None:
            self.rotation_failures.labels(*labels, k.failure).inc()
        if k.completed:
            self.rotations_completed.labels(*labels).inc()

    def _set_password_pending(self, account: str) -> None:
        count = sum(1 for acc, waits in self._password_pending.values() if acc == account and waits)
        self.password_change_pending_keys.labels(account).set(count)

    def observe_request(self, obs: RequestObservation) -> None:
        """The Bybit client's observer: one HTTP attempt."""
        if obs.ret_code is not None:
            code = str(obs.ret_code)
        elif obs.http_status is not None:
            code = f"http_{obs.http_status // 100}xx"
        else:
            code = "no_response"
        self.bybit_requests.labels(obs.endpoint, code).inc()
        if obs.limit_remaining is not None:
            self.bybit_rate_limit_remaining.labels(obs.endpoint).set(obs.limit_remaining)

    def observe_vault_error(self, operation: str) -> None:
        """The Vault store's on_error hook."""
        self.vault_errors.labels(operation).inc()


def timestamp(when: datetime | None) -> float:
    """A datetime as a Prometheus timestamp; None (never) is +Inf."""
    return math.inf if when is None else when.timestamp()


def _label_sets(metric: Counter | Gauge) -> set[tuple[str, ...]]:
    """The label values of every child of a labelled metric."""
    names = metric._labelnames  # noqa: SLF001 (client_python has no public listing of children)
    found: set[tuple[str, ...]] = set()
    for family in metric.collect():
        for sample in family.samples:
            if all(n in sample.labels for n in names):
                found.add(tuple(sample.labels[n] for n in names))
    return found


def _remove(metric: Counter | Gauge, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
