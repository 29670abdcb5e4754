"""Prometheus metrics, on an injected registry so every test gets a fresh one.

Labels are bounded: key name, account name, sub UID, endpoint path, Bybit retCode, state. Never a
key id (unbounded over time) or anything secret. Every metric is documented in docs/metrics.md.
"""

from __future__ import annotations

import contextlib
import math
import struct
import sys
import threading
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from rotator import __version__
from rotator.key_report import ReportState

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime, timedelta

    from rotator.adapters.bybit import RequestObservation
    from rotator.key_report import KeyReport, ReconcileResult

KEY_LABELS = ("key", "account", "sub_uid")

KEY_STATES = tuple(ReportState)  # exactly one is 1 in rotator_key_state at a time
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

        # ---- per managed key: built at scrape time from each key's last report (KeySeries)
        self.keys = KeySeries()
        r.register(self.keys)

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

    # ---- helpers the daemon calls
    def declare(self, keys: Iterable[tuple[str, str, int]], accounts: Iterable[str]) -> None:
        """Create the series of these keys and accounts whose value is known before the first
        reconcile: per key the attempt and completion counters and the gauges whose 0 means
        "nothing wrong"; per account the orphan and pending-key gauges; the daemon's counters for
        every value of their closed label sets. Called at start and on each reload."""
        for name, account, sub_uid in keys:
            self.keys.declare(_labels(name, account, sub_uid))
        seen = _label_sets(self.orphan_keys)
        for account in accounts:
            self.keys.declare_account(account)
            if (account,) not in seen:
                self.orphan_keys.labels(account).set(0)
        for job in SCHEDULER_JOBS:
            for event in SCHEDULER_EVENTS:
                self.scheduler_job_errors.labels(job, event)
        for outcome in RELOAD_OUTCOMES:
            self.config_reloads.labels(outcome)
        for operation in VAULT_OPERATIONS:
            self.vault_errors.labels(operation)

    def observe_clock_offset(self, offset: timedelta) -> None:
        """The offset the Bybit client measured (Bybit's clock minus ours)."""
        self.bybit_clock_offset.set(offset.total_seconds())

    def remove_key(self, key: str, account: str, sub_uid: int) -> None:
        """Drop a key's series when it leaves the config (SIGHUP), so no stale alert fires."""
        self.keys.remove(_labels(key, account, sub_uid))

    def remove_account(self, account: str) -> None:
        """Drop an account's series when it leaves the config."""
        self.keys.remove_account(account)
        for gauge in (
            self.master_key_expiry,
            self.password_change_timestamp,
            self.orphan_keys,
            self.leader,
            self.account_run_seconds,
        ):
            _remove(gauge, (account,))

    def observe(self, result: ReconcileResult) -> None:
        """Feed one reconcile's result: per-key series, per-account series, run duration."""
        self.keys.observe(result.keys, count=True)
        self._observe_accounts(result)
        self.keys.render_deflated()  # here, not in the next scrape
        self.reconcile_duration.observe(
            max((result.finished_at - result.started_at).total_seconds(), 0.0)
        )

    def observe_state(self, result: ReconcileResult) -> None:
        """The gauges only (a follower's view of the holder's snapshot): counters move only on
        what a report says happened in its run, and a snapshot's reports say nothing did."""
        self.keys.observe(result.keys, count=False)
        self._observe_accounts(result)
        self.keys.render_deflated()  # here, not in the next scrape

    def _observe_accounts(self, result: ReconcileResult) -> None:
        for a in result.accounts:
            self.keys.declare_account(a.name)
            if a.master_ok:
                self.master_key_expiry.labels(a.name).set(timestamp(a.master_expires_at))
                if a.orphans is not None:  # judged only by a full run of the account
                    self.orphan_keys.labels(a.name).set(len(a.orphans))
                changed = a.password_changed_at
                self.password_change_timestamp.labels(a.name).set(
                    changed.timestamp() if changed else 0.0
                )

    def observe_handoff_failure(self, key: str, account: str, sub_uid: int, hook: str) -> None:
        """A hand-off hook failed (HookChains' on_failure)."""
        self.keys.count_handoff_failure(_labels(key, account, sub_uid), hook)

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

    def exposition(self, *, compressed: bool = False) -> bytes:
        """What /metrics serves: the text of generate_latest(self.registry), the per-key
        families first, from their compressed text rendered after each change (observe renders
        it, so a scrape after a reconcile finds it ready). `compressed`: one gzip member
        whose per-key part is compressed once per change too."""
        plain = generate_latest(_Without(self.registry, self.keys))
        if not compressed:
            return self.keys.render() + plain
        deflated, crc, size = self.keys.render_deflated()
        packer = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        rest = packer.compress(plain) + packer.flush()
        trailer = struct.pack("<II", zlib.crc32(plain, crc), (size + len(plain)) & 0xFFFFFFFF)
        return _GZIP_HEADER + deflated + rest + trailer


# RFC 1952: magic, deflate, no flags, no mtime, no extra flags, OS unknown. Deflate streams may be
# joined when all but the last end in a sync flush (byte-aligned, not final): one member.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class _Without:
    """A registry's collectors but one, for generate_latest."""

    def __init__(self, registry: CollectorRegistry, left_out: Collector) -> None:
        self._registry = registry
        self._left_out = left_out

    def collect(self) -> Iterator[Metric]:
        with self._registry._lock:  # noqa: SLF001 (no public listing of a registry's collectors)
            collectors = [
                c
                for c in self._registry._collector_to_names  # noqa: SLF001
                if c is not self._left_out
            ]
        for collector in collectors:
            yield from collector.collect()


# ==================================================================== the per-key series
# (name, kind, help, extra label): the families KeySeries exposes, in exposition order.
_FAMILIES: tuple[tuple[str, str, str, str | None], ...] = (
    (
        "rotator_key_expiry_timestamp_seconds",
        "gauge",
        "When the key consumers use expires (Unix time); +Inf if it never expires.",
        None,
    ),
    (
        "rotator_key_next_renewal_timestamp_seconds",
        "gauge",
        "When the key's next rotation step is due (Unix time).",
        None,
    ),
    (
        "rotator_key_state",
        "gauge",
        "1, labelled with the key's current rotation state (the other states have no series).",
        "state",
    ),
    (
        "rotator_key_last_rotation_timestamp_seconds",
        "gauge",
        "When the key's last rotation completed (Unix time); 0 if never.",
        None,
    ),
    (
        "rotator_key_escalated",
        "gauge",
        "1 if the key will expire before it can be rotated without a human.",
        None,
    ),
    (
        "rotator_key_drift",
        "gauge",
        "1 if the active key's permissions, IPs or readOnly on Bybit differ from the config.",
        None,
    ),
    ("rotator_rotation_attempts", "counter", "Rotation steps attempted.", None),
    (
        "rotator_rotation_failures",
        "counter",
        "Rotation steps that failed, by class of failure.",
        "reason",
    ),
    ("rotator_rotations_completed", "counter", "Rotations completed (old key revoked).", None),
    ("rotator_handoff_failures", "counter", "Hand-off hooks that failed.", "hook"),
)
_PENDING = (
    "rotator_password_change_pending_keys",
    (
        "Managed keys of the account that a password change forces to rotate and that are not "
        "yet replaced."
    ),
)
_Samples = list[tuple[str | None, float]]
_CHUNK_KEYS = 500  # keys rendered at once: 10,000 keys' biggest family is ~1 MB of text
_go_float: Callable[[float], str] = floatToGoString  # client_python's own formatting, typed


class _Key:
    """One key's series values: what its last reports said, and its counters. None: no series."""

    __slots__ = (
        "attempts",
        "completed",
        "drift",
        "escalated",
        "expiry",
        "failures",
        "handoffs",
        "last_rotation",
        "next_renewal",
        "pending",
        "state",
    )

    def __init__(self) -> None:
        self.expiry: float | None = None
        self.next_renewal: float | None = None
        self.state: str | None = None
        self.last_rotation: float | None = None
        self.escalated = 0.0
        self.drift = 0.0
        self.pending: bool | None = None
        self.attempts = 0
        self.completed = 0
        self.failures: dict[str, int] | None = None
        self.handoffs: dict[str, int] | None = None

    def snapshot(self) -> tuple[object, ...]:
        failures = tuple(self.failures.items()) if self.failures else ()
        return (
            self.expiry,
            self.next_renewal,
            self.state,
            self.last_rotation,
            self.escalated,
            self.drift,
            self.pending,
            self.attempts,
            self.completed,
            failures,
        )

    def values(self) -> tuple[_Samples, ...]:
        """Per family in _FAMILIES order: (extra label value, value) of each sample."""
        return tuple(self.samples(i) for i in range(len(_FAMILIES)))

    def samples(self, family: int) -> _Samples:  # noqa: PLR0911 (one case per family)
        """(extra label value, value) of each sample of _FAMILIES[family]."""
        match family:
            case 0 | 1 | 3:
                v = (self.expiry, self.next_renewal, None, self.last_rotation)[family]
                return [] if v is None else [(None, v)]
            case 2:  # the current state only: one series per key, not one per state
                return [(self.state, 1.0)] if self.state else []
            case 4:
                return [(None, self.escalated)]
            case 5:
                return [(None, self.drift)]
            case 6:
                return [(None, float(self.attempts))]
            case 7:
                return [(r, float(n)) for r, n in (self.failures or {}).items()]
            case 8:
                return [(None, float(self.completed))]
            case _:
                return [(h, float(n)) for h, n in (self.handoffs or {}).items()]


class KeySeries(Collector):
    """Every per-key series (and the per-account count of keys a password change still forces
    to rotate), produced at scrape time from one small record per key: a key that leaves the
    config leaves this map and its series are gone. The per-key counters count here too (no
    `_created` samples: 2 fewer series per key than prometheus_client's Counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str, str], _Key] = {}
        self._accounts: dict[str, None] = {}  # ordered set
        self._generation = 0  # counts changes; the renders below are of one generation
        self._deflated: tuple[int, bytes, int, int] | None = None

    def _changed(self) -> None:  # under the lock
        self._generation += 1
        self._deflated = None

    # ---- feeding
    def declare(self, labels: tuple[str, str, str]) -> None:
        with self._lock:
            if labels not in self._keys:
                self._keys[labels] = _Key()
                self._changed()

    def declare_account(self, account: str) -> None:
        with self._lock:
            if account not in self._accounts:
                self._accounts[account] = None
                self._changed()

    def remove(self, labels: tuple[str, str, str]) -> None:
        with self._lock:
            if self._keys.pop(labels, None) is not None:
                self._changed()

    def remove_account(self, account: str) -> None:
        with self._lock:
            self._accounts.pop(account, None)
            self._changed()

    def count_handoff_failure(self, labels: tuple[str, str, str], hook: str) -> None:
        with self._lock:
            row = self._keys.setdefault(labels, _Key())
            row.handoffs = row.handoffs or {}
            row.handoffs[hook] = row.handoffs.get(hook, 0) + 1
            self._changed()

    def observe(self, reports: Iterable[KeyReport], *, count: bool) -> None:
        with self._lock:
            for k in reports:
                row = self._keys.setdefault(_labels(k.name, k.account, k.sub_uid), _Key())
                if _update(row, k, count=count):
                    self._changed()

    # ---- scraping
    def describe(self) -> list[Metric]:
        return [*_families(), GaugeMetricFamily(_PENDING[0], _PENDING[1], labels=("account",))]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            rows = [(labels, row.values()) for labels, row in self._keys.items()]
            pending = self._pending()
        families = _families()
        for labels, values in rows:
            for family, (_, _, _, extra), samples in zip(families, _FAMILIES, values, strict=True):
                for value_label, value in samples:
                    more = [value_label or ""] if extra else []
                    family.add_metric([*labels, *more], value)
        yield from families
        gauge = GaugeMetricFamily(_PENDING[0], _PENDING[1], labels=("account",))
        for account, n in pending.items():
            gauge.add_metric([account], n)
        yield gauge

    def render(self) -> bytes:
        """The text generate_latest writes for collect(), rendered from each key's record
        (not kept: Prometheus asks for gzip, and 10,000 keys make 14 MB of text)."""
        with self._lock:
            return b"".join(self._chunks())

    def render_deflated(self) -> tuple[bytes, int, int]:
        """render() as raw deflate blocks ending in a sync flush (more blocks may follow), with
        the CRC-32 and the length of the text; kept until the next change (10,000 keys: 0.6 MB).
        Rendered and compressed one family at a time: the whole text never exists at once."""
        with self._lock:
            done = self._deflated
            if done is not None and done[0] == self._generation:
                return done[1], done[2], done[3]
            packer = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
            parts, crc, size = [], 0, 0
            for chunk in self._chunks():
                parts.append(packer.compress(chunk))
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
            parts.append(packer.flush(zlib.Z_SYNC_FLUSH))
            self._deflated = (self._generation, b"".join(parts), crc, size)
            return self._deflated[1], crc, size

    def _chunks(self) -> Iterator[bytes]:
        """The exposition text, a family's lines of _CHUNK_KEYS keys at a time (the caller holds
        the lock): what is rendered at once stays small however many keys there are."""
        rows = list(self._keys.items())
        for i, (name, kind, doc, _) in enumerate(_FAMILIES):
            shown = f"{name}_total" if kind == "counter" else name
            yield f"# HELP {shown} {doc}\n# TYPE {shown} {kind}\n".encode()
            for start in range(0, len(rows), _CHUNK_KEYS):
                batch = rows[start : start + _CHUNK_KEYS]
                yield "".join(_lines(i, k, row) for k, row in batch).encode()
        head = f"# HELP {_PENDING[0]} {_PENDING[1]}\n# TYPE {_PENDING[0]} gauge\n"
        yield (
            head
            + "".join(
                f'{_PENDING[0]}{{account="{_escape(a)}"}} {_go_float(n)}\n'
                for a, n in self._pending().items()
            )
        ).encode()

    def _pending(self) -> dict[str, float]:
        counts = dict.fromkeys(self._accounts, 0.0)
        for (_, account, _), row in self._keys.items():
            if row.pending and account in counts:
                counts[account] += 1
        return counts


def _labels(key: str, account: str, sub_uid: int) -> tuple[str, str, str]:
    """A key's label values, the account and sub UID interned: 10,000 keys share a few of them
    instead of holding a copy each (0.5 MB at 10,000 keys)."""
    return key, sys.intern(account), sys.intern(str(sub_uid))


def _update(row: _Key, k: KeyReport, *, count: bool) -> bool:
    """Apply one report; True if a series value changed."""
    before = row.snapshot()
    known = k.key_id is not None or k.expires_at is not None
    if known:  # a report of an unreadable account knows nothing about the expiry
        row.expiry = timestamp(k.expires_at)
    if k.next_at is not None or known:
        row.next_renewal = timestamp(k.next_at)
    if k.state in KEY_STATES:
        row.state = k.state
    last = k.last_rotation_at.timestamp() if k.last_rotation_at else 0.0
    if known or last:
        row.last_rotation = last
    row.escalated = 1.0 if k.escalated else 0.0
    if k.drift is not None:
        row.drift = 1.0 if k.drift else 0.0
    if k.password_change_pending is not None:
        row.pending = k.password_change_pending
    if count:
        _count(row, k)
    return row.snapshot() != before


def _count(row: _Key, k: KeyReport) -> None:
    """The counters: what the report says happened in its run."""
    if k.step_attempted or k.completed or k.failure is not None:
        row.attempts += 1
    if k.failure is not None:
        row.failures = row.failures or {}
        row.failures[k.failure] = row.failures.get(k.failure, 0) + 1
    if k.completed:
        row.completed += 1


def _families() -> list[GaugeMetricFamily | CounterMetricFamily]:
    out: list[GaugeMetricFamily | CounterMetricFamily] = []
    for name, kind, doc, extra in _FAMILIES:
        labels = [*KEY_LABELS, extra] if extra else list(KEY_LABELS)
        if kind == "counter":
            out.append(CounterMetricFamily(name, doc, labels=labels))
        else:
            out.append(GaugeMetricFamily(name, doc, labels=labels))
    return out


def _lines(family: int, labels: tuple[str, str, str], row: _Key) -> str:
    """A key's lines of one family, labels sorted as generate_latest sorts them (every extra
    label sorts after `account` and before `sub_uid`)."""
    samples = row.samples(family)
    if not samples:
        return ""
    name, kind, _, extra = _FAMILIES[family]
    shown = f"{name}_total" if kind == "counter" else name
    key, account, sub_uid = (_escape(v) for v in labels)
    if extra is None:
        plain = f'account="{account}",key="{key}",sub_uid="{sub_uid}"'
        return "".join(f"{shown}{{{plain}}} {_go_float(v)}\n" for _, v in samples)
    if extra > "key":
        head, tail = f'account="{account}",key="{key}",{extra}="', f'",sub_uid="{sub_uid}"'
    else:
        head, tail = f'account="{account}",{extra}="', f'",key="{key}",sub_uid="{sub_uid}"'
    return "".join(
        f"{shown}{{{head}{_escape(label or '')}{tail}}} {_go_float(v)}\n" for label, v in samples
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


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
