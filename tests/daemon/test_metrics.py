"""Metrics from a ReconcileResult and the adapter hooks, read back with get_sample_value."""

from __future__ import annotations

import gzip
import math
import zlib
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest
from rotator.adapters.bybit import RequestObservation
from rotator.adapters.metrics import Metrics
from rotator.key_report import AccountReport, KeyReport, ReconcileResult

NOW = datetime(2026, 1, 1, tzinfo=UTC)
L = {"key": "bot1", "account": "main", "sub_uid": "2001"}


def result(**key) -> ReconcileResult:
    fields = {
        "name": "bot1",
        "account": "main",
        "sub_uid": 2001,
        "state": "idle",
        "key_id": "KEYID0001",
        "expires_at": NOW + timedelta(days=90),
        "next_at": NOW + timedelta(days=70),
        "last_rotation_at": NOW,
    } | key
    return ReconcileResult(
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=2),
        keys=(KeyReport(**fields),),
        accounts=(
            AccountReport(
                name="main",
                master_ok=True,
                master_expires_at=None,
                password_changed_at=NOW,
                orphans=("abc",),
            ),
        ),
    )


def test_key_and_account_series():
    m = Metrics()
    m.observe(result(completed=True, step_attempted=True))
    get = m.registry.get_sample_value
    assert get("rotator_key_expiry_timestamp_seconds", L) == (NOW + timedelta(days=90)).timestamp()
    assert (
        get("rotator_key_next_renewal_timestamp_seconds", L)
        == (NOW + timedelta(days=70)).timestamp()
    )
    assert get("rotator_key_state", L | {"state": "idle"}) == 1
    assert get("rotator_key_state", L | {"state": "failed"}) is None  # the current state only
    assert get("rotator_key_last_rotation_timestamp_seconds", L) == NOW.timestamp()
    assert get("rotator_key_escalated", L) == 0
    assert get("rotator_rotation_attempts_total", L) == 1
    assert get("rotator_rotations_completed_total", L) == 1
    assert math.isinf(get("rotator_master_key_expiry_timestamp_seconds", {"account": "main"}))
    assert get("rotator_password_change_timestamp_seconds", {"account": "main"}) == NOW.timestamp()
    assert get("rotator_orphan_keys", {"account": "main"}) == 1
    assert get("rotator_reconcile_duration_seconds_sum") == 2


def test_failure_escalation_and_unknown_expiry():
    """A failed report of an unreadable account leaves the known expiry alone."""
    m = Metrics()
    m.observe(result())
    m.observe(result(state="escalated", escalated=True, failure="bybit", step_attempted=True))
    get = m.registry.get_sample_value
    assert get("rotator_key_state", L | {"state": "escalated"}) == 1
    assert get("rotator_key_escalated", L) == 1
    assert get("rotator_rotation_failures_total", L | {"reason": "bybit"}) == 1
    m.observe(result(state="failed", key_id=None, expires_at=None, next_at=None))
    assert get("rotator_key_expiry_timestamp_seconds", L) == (NOW + timedelta(days=90)).timestamp()


def obs(http_status, ret_code, remaining):
    return RequestObservation(
        endpoint="/v5/user/query-api",
        http_status=http_status,
        ret_code=ret_code,
        limit_remaining=remaining,
        duration_s=0.01,
    )


def test_adapter_hooks_and_remove_key():
    m = Metrics()
    m.observe_request(obs(200, 0, 9))
    m.observe_request(obs(503, None, None))
    m.observe_request(obs(None, None, None))
    m.observe_vault_error("write")
    get = m.registry.get_sample_value
    ep = {"endpoint": "/v5/user/query-api"}
    assert get("rotator_bybit_requests_total", ep | {"ret_code": "0"}) == 1
    assert get("rotator_bybit_requests_total", ep | {"ret_code": "http_5xx"}) == 1
    assert get("rotator_bybit_requests_total", ep | {"ret_code": "no_response"}) == 1
    assert get("rotator_bybit_rate_limit_remaining", ep) == 9
    assert get("rotator_vault_errors_total", {"operation": "write"}) == 1
    m.observe(result(failure="vault", completed=True))
    m.observe_handoff_failure("bot1", "main", 2001, "file")
    m.remove_key("bot1", "main", 2001)
    for name, extra in [
        ("rotator_key_expiry_timestamp_seconds", {}),
        ("rotator_key_state", {"state": "idle"}),
        ("rotator_rotations_completed_total", {}),
        ("rotator_rotation_failures_total", {"reason": "vault"}),
        ("rotator_handoff_failures_total", {"hook": "file"}),
        ("rotator_key_drift", {}),
    ]:
        assert get(name, L | extra) is None, name


def test_declared_series_exist_at_zero_before_any_reconcile():
    """The series whose value is known before the first reconcile exist at 0 before it."""
    m = Metrics()
    m.declare([("bot1", "main", 2001)], ["main"])
    get = m.registry.get_sample_value
    assert get("rotator_rotation_attempts_total", L) == 0
    assert get("rotator_rotations_completed_total", L) == 0
    # Per-class failure series are not declared (scrape size, issue 13): the rules count a
    # series born within their window (deploy/prometheus/rules_test.yml starts them absent).
    assert get("rotator_rotation_failures_total", L | {"reason": "bybit"}) is None
    assert get("rotator_key_escalated", L) == 0
    assert get("rotator_key_drift", L) == 0
    assert get("rotator_orphan_keys", {"account": "main"}) == 0
    assert get("rotator_password_change_pending_keys", {"account": "main"}) == 0
    assert get("rotator_scheduler_job_errors_total", {"job": "due", "event": "error"}) == 0
    assert get("rotator_config_reloads_total", {"outcome": "rejected"}) == 0
    assert get("rotator_vault_errors_total", {"operation": "write"}) == 0


def test_declare_keeps_known_values():
    """A reload re-declares: a gauge already set is not reset to 0."""
    m = Metrics()
    m.observe(result(state="escalated", escalated=True, drift=("readOnly is 0, wanted 1",)))
    m.declare([("bot1", "main", 2001)], ["main"])
    get = m.registry.get_sample_value
    assert get("rotator_key_escalated", L) == 1
    assert get("rotator_key_drift", L) == 1
    assert get("rotator_orphan_keys", {"account": "main"}) == 1


def test_password_change_pending_counts_keys_until_rotated():
    """Pending keys per account come from each key's last report, so a partial run of another
    key does not reset them; the count drops to 0 once the key is replaced."""
    m = Metrics()
    get = m.registry.get_sample_value
    m.observe(result(password_change_pending=True))
    assert get("rotator_password_change_pending_keys", {"account": "main"}) == 1
    other = ReconcileResult(
        started_at=NOW,
        finished_at=NOW,
        keys=(
            KeyReport(
                name="bot2",
                account="main",
                sub_uid=2002,
                state="idle",
                key_id="K2",
                password_change_pending=False,
            ),
        ),
        accounts=(AccountReport(name="main", master_ok=True),),
    )
    m.observe(other)
    assert get("rotator_password_change_pending_keys", {"account": "main"}) == 1
    assert get("rotator_password_change_timestamp_seconds", {"account": "main"}) == 0
    m.observe(result(password_change_pending=None))  # unknown: keeps the last word
    assert get("rotator_password_change_pending_keys", {"account": "main"}) == 1
    m.observe(result(password_change_pending=False))
    assert get("rotator_password_change_pending_keys", {"account": "main"}) == 0


def test_orphans_unjudged_leave_the_gauge_alone():
    """A partial run (orphans None) does not touch rotator_orphan_keys."""
    m = Metrics()
    m.observe(result())
    partial = ReconcileResult(
        started_at=NOW,
        finished_at=NOW,
        keys=(),
        accounts=(AccountReport(name="main", master_ok=True, orphans=None),),
    )
    m.observe(partial)
    assert m.registry.get_sample_value("rotator_orphan_keys", {"account": "main"}) == 1


def test_clock_offset_and_drift():
    m = Metrics()
    m.observe_clock_offset(timedelta(seconds=-42.5))
    get = m.registry.get_sample_value
    assert get("rotator_bybit_clock_offset_seconds") == -42.5
    m.observe(result(drift=()))
    assert get("rotator_key_drift", L) == 0
    m.observe(result(drift=("IPs are ['*'], wanted ['1.2.3.4']",)))
    assert get("rotator_key_drift", L) == 1


def fleet(n: int) -> Metrics:
    """n keys, some with failures, hand-off failures and a label value that needs escaping."""
    m = Metrics()
    keys = [(f"k{i}", "main" if i % 2 else 'a"b\\c', 2000 + i) for i in range(n)]
    m.declare(keys, ["main", 'a"b\\c'])
    m.observe(
        ReconcileResult(
            started_at=NOW,
            finished_at=NOW,
            keys=tuple(
                KeyReport(
                    name=name,
                    account=account,
                    sub_uid=sub_uid,
                    state="failed" if i % 3 else "idle",
                    key_id="K",
                    expires_at=None if i % 4 else NOW,
                    failure="bybit" if i % 3 else None,
                    password_change_pending=bool(i % 2),
                )
                for i, (name, account, sub_uid) in enumerate(keys)
            ),
            accounts=(AccountReport(name="main", master_ok=True),),
        )
    )
    m.observe_handoff_failure("k1", "main", 2001, "command")
    return m


def test_exposition_is_generate_latest_and_one_gzip_member():
    """/metrics' cached text says what the registry says (every line, escaping included), and
    its gzip form is one member: a client that reads only the first member (httpx) sees it all."""
    m = fleet(7)
    for _ in range(2):  # the second time from the cache
        text = m.exposition()
        assert sorted(text.splitlines()) == sorted(generate_latest(m.registry).splitlines())
        packed = m.exposition(compressed=True)
        one_member = zlib.decompressobj(zlib.MAX_WBITS | 16)
        assert one_member.decompress(packed) == text
        assert one_member.eof
        assert not one_member.unused_data
        assert gzip.decompress(packed) == text


def test_exposition_follows_every_change():
    """The cache never serves a stale key: a new report, a hand-off failure, a removed key."""
    m = fleet(3)
    changes = [
        (
            lambda: m.observe(result(state="escalated", escalated=True)),
            'rotator_key_escalated{account="main",key="bot1",sub_uid="2001"} 1.0',
        ),
        (
            lambda: m.observe_handoff_failure("k2", "main", 2002, "file"),
            'hook="file",key="k2"',
        ),
        (lambda: m.remove_key("k1", "main", 2001), None),
    ]
    for change, shown in changes:
        m.exposition(compressed=True)  # cached now
        change()
        text = m.exposition().decode()
        assert sorted(text.splitlines()) == sorted(
            generate_latest(m.registry).decode().splitlines()
        )
        assert gzip.decompress(m.exposition(compressed=True)).decode() == text
        if shown:
            assert shown in text
    assert 'key="k1"' not in text


def test_a_few_series_per_key():
    """Per key: 5 gauges, the current state and 2 counters without _created (issue 13: was
    18, then 16 with a series per state)."""
    m = fleet(10)
    m.remove_key("k1", "main", 2001)  # the only one with a hand-off failure
    lines = [
        line for line in m.exposition().decode().splitlines() if 'key="k3"' in line
    ]  # k3: idle, no failure
    assert len(lines) == 8, lines
    assert not [line for line in lines if "_created" in line]


def test_the_state_series_follows_the_current_state():
    """One rotator_key_state series per key, the current state's: a change of state replaces
    it (the old state's series is gone, not 0)."""
    m = Metrics()
    get = m.registry.get_sample_value
    for state in ("idle", "failed", "awaiting_ack", "idle"):
        m.observe(result(state=state))
        shown = [
            line
            for line in m.exposition().decode().splitlines()
            if line.startswith("rotator_key_state{")
        ]
        assert shown == [
            f'rotator_key_state{{account="main",key="bot1",state="{state}",sub_uid="2001"}} 1.0'
        ]
        assert get("rotator_key_state", L | {"state": state}) == 1


def test_a_reconcile_renders_the_scrape_ahead():
    """observe() leaves the compressed per-key block ready: the next scrape only sends it."""
    m = fleet(3)
    m.observe(result(state="failed", failure="bybit"))
    ready = m.keys._deflated
    assert ready is not None
    assert ready[0] == m.keys._generation  # rendered for what observe() just fed
