"""Notifications: payload shape per channel, rate limit per kind and subject, master thresholds,
failures never raised, no secret in any message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rotator.adapters.notify import Kind, Notice, Notifier, build_channels
from rotator.clock import ManualClock
from rotator.config import NotifyConfig
from rotator.key_report import AccountReport, KeyReport, ReconcileResult
from rotator.model import Secret

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def notifier(capture, tmp_path, monkeypatch, *, types=("slack",), interval="1h", clock=None):
    url_file = tmp_path / "url"
    url_file.write_text(capture.url + "/hook\n")
    token_file = tmp_path / "token"
    token_file.write_text("123456:TELEGRAMTOKENabcdef\n")
    channels = []
    for t in types:
        if t == "telegram":
            channels.append({"type": t, "bot_token_file": str(token_file), "chat_id": "42"})
        else:
            channels.append({"type": t, "url_file": str(url_file)})
    cfg = NotifyConfig.model_validate({"channels": channels, "min_interval": interval})
    return Notifier.from_config(
        cfg, clock=clock or ManualClock(NOW), telegram_api_base=capture.url + "/tg"
    )


def failing(name="bot1", error="Bybit answered 10006") -> ReconcileResult:
    return ReconcileResult(
        started_at=NOW,
        finished_at=NOW,
        keys=(
            KeyReport(
                name=name,
                account="main",
                sub_uid=2001,
                state="failed",
                failure="bybit_rate_limit",
                last_error=error,
                next_at=NOW + timedelta(minutes=5),
            ),
        ),
        accounts=(AccountReport(name="main", master_ok=True),),
    )


@pytest.mark.parametrize(
    ("kind", "path", "check"),
    [
        ("slack", "/hook", lambda body: "Rotation of bot1 is failing" in body["text"]),
        (
            "discord",
            "/hook",
            lambda body: "bot1" in body["content"] and body["allowed_mentions"] == {"parse": []},
        ),
        (
            "telegram",
            "/tg/bot123456:TELEGRAMTOKENabcdef/sendMessage",
            lambda body: body["chat_id"] == "42" and "bot1" in body["text"],
        ),
        (
            "webhook",
            "/hook",
            lambda body: (
                body["kind"] == "rotation_failing"
                and body["subject"] == "bot1"
                and body["severity"] == "warning"
                and body["fields"]["failure"] == "bybit_rate_limit"
            ),
        ),
    ],
)
def test_payload_shape_per_channel(capture, tmp_path, monkeypatch, kind, path, check):
    n = notifier(capture, tmp_path, monkeypatch, types=(kind,))
    notices = n.observe(failing(), NOW)
    assert [x.kind for x in notices] == [Kind.ROTATION_FAILING]
    assert n.flush()
    [got] = capture.received
    assert got.path == path
    assert check(got.json)
    n.close()


def test_rate_limited_per_kind_and_subject_and_held_back_count_reported(
    capture, tmp_path, monkeypatch
):
    """A flapping failure sends once per min_interval; the next message says how many were held."""
    clock = ManualClock(NOW)
    n = notifier(capture, tmp_path, monkeypatch, types=("webhook",), clock=clock)
    for _ in range(5):
        n.observe(failing(), clock.now())
        clock.advance(timedelta(minutes=1))
    n.observe(failing("bot2"), clock.now())  # another subject is not held back
    assert n.flush()
    assert [r.json["subject"] for r in capture.received] == ["bot1", "bot2"]
    clock.advance(timedelta(hours=1))
    n.observe(failing(), clock.now())
    assert n.flush()
    assert capture.received[-1].json["suppressed"] == 4
    n.close()


def test_master_key_thresholds_once_each(capture, tmp_path, monkeypatch):
    """30/14/7/3/1 days: one message per threshold crossed, however often reconcile runs."""
    clock = ManualClock(NOW)
    n = notifier(capture, tmp_path, monkeypatch, types=("webhook",), interval="0s", clock=clock)
    expiry = NOW + timedelta(days=40)

    def result() -> ReconcileResult:
        return ReconcileResult(
            started_at=clock.now(),
            finished_at=clock.now(),
            keys=(),
            accounts=(AccountReport(name="main", master_ok=True, master_expires_at=expiry),),
        )

    for _ in range(40 * 4):  # every 6 hours for 40 days
        n.observe(result(), clock.now())
        clock.advance(timedelta(hours=6))
    assert n.flush()
    subjects = [r.json["subject"] for r in capture.received]
    assert subjects == ["main:30d", "main:14d", "main:7d", "main:3d", "main:1d"]
    n.close()


def test_sending_failures_are_logged_not_raised(capture, tmp_path, monkeypatch):
    capture.status = 500
    counted = []
    n = notifier(capture, tmp_path, monkeypatch, types=("slack", "discord"))
    n._on_outcome = lambda channel, _kind, outcome: counted.append((channel, outcome))
    n.deliver(Notice(kind=Kind.KEY_ESCALATED, subject="bot1", title="t", text="x"))
    assert counted == [("slack", "failed"), ("discord", "failed")]
    n.close()


def test_missing_url_source_is_a_logged_failure(tmp_path, monkeypatch):
    cfg = NotifyConfig.model_validate({"channels": [{"type": "slack", "url_env": "NO_SUCH_VAR"}]})
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    n = Notifier.from_config(cfg, clock=ManualClock(NOW))
    n.deliver(Notice(kind=Kind.VAULT_UNREACHABLE, subject="vault", title="t", text="x"))
    n.close()


def test_no_secret_in_any_message(capture, tmp_path, monkeypatch):
    """An error text that quotes a known secret is scrubbed before it leaves the process."""
    leaked = Secret("LEAKEDSECRET0000000000000000000000001")
    n = notifier(capture, tmp_path, monkeypatch, types=("slack", "discord", "telegram", "webhook"))
    n.observe(failing(error=f"weird reply {leaked.reveal()}"), NOW)
    assert n.flush()
    assert len(capture.received) == 4
    for got in capture.received:
        assert leaked.reveal().encode() not in got.body
    n.close()


def test_kinds_from_a_result(capture, tmp_path, monkeypatch):
    """completed, escalated and password change each map to their kind."""
    n = notifier(capture, tmp_path, monkeypatch, types=("webhook",))
    result = ReconcileResult(
        started_at=NOW,
        finished_at=NOW,
        keys=(
            KeyReport(name="a", account="main", sub_uid=1, state="idle", completed=True),
            KeyReport(
                name="b",
                account="main",
                sub_uid=1,
                state="escalated",
                escalated=True,
                last_error="e",
            ),
        ),
        accounts=(AccountReport(name="main", master_ok=True, password_change_detected_now=True),),
    )
    kinds = [x.kind for x in n.observe(result, NOW)]
    assert kinds == [Kind.ROTATION_COMPLETED, Kind.KEY_ESCALATED, Kind.PASSWORD_CHANGE]
    n.unreachable("vault", "connection refused")
    assert n.flush()
    assert [r.json["kind"] for r in capture.received] == [
        "rotation_completed",
        "key_escalated",
        "password_change_detected",
        "vault_unreachable",
    ]
    n.close()


def test_no_channels_is_silent():
    n = Notifier(build_channels(NotifyConfig()), min_interval=timedelta(0), clock=ManualClock(NOW))
    assert n.observe(failing(), NOW)
    n.close()


def test_the_http_client_is_made_at_the_first_delivery(capture, tmp_path, monkeypatch):
    """No channel, no httpx.Client (it loads the CA bundle: 1 to 3 MB of a daemon's RSS)."""
    quiet = Notifier(
        build_channels(NotifyConfig()), min_interval=timedelta(0), clock=ManualClock(NOW)
    )
    quiet.observe(failing(), NOW)
    assert quiet._client is None
    quiet.close()
    n = notifier(capture, tmp_path, monkeypatch, types=("webhook",))
    assert n._client is None
    n.unreachable("vault", "connection refused")
    assert n.flush()
    assert n._client is not None
    assert [r.json["kind"] for r in capture.received] == ["vault_unreachable"]
    n.close()
    assert n._client is None
