"""Chat notifications for operators without Alertmanager: Slack, Discord, Telegram, a JSON webhook.

What is sent (`Kind`): a rotation completed, a rotation failing, a key escalated (it will expire
before it can be rotated without a human), a password change detected, the master key expiring
(once per threshold: 30, 14, 7, 3, 1 days left), the daemon unable to reach Vault or Bybit.

At most one message per kind and subject (key, account) per `notify.min_interval`; what is held
back is counted and mentioned in the next message of that kind and subject, so a flapping failure
sends one message an hour, not one a minute. Sending happens on a background thread: a slow or dead
chat service never delays a rotation. Failures are logged and counted, never raised.

No message carries a secret, a key id or a webhook URL: texts name keys by their config name and
`key_fp`, and error texts pass through the log redactor's registry of known secrets first.
Webhook URLs and bot tokens are read from files or environment variables at send time.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import structlog

from rotator.clock import Clock
from rotator.config import NotifyChannel, NotifyConfig
from rotator.key_report import ReconcileResult
from rotator.model import SECRET_REGISTRY, Secret
from rotator.reminders import Reminder, TrackedKind

log = structlog.get_logger(__name__)

TELEGRAM_API = "https://api.telegram.org"
MASTER_THRESHOLDS_DAYS = (30, 14, 7, 3, 1)
SEND_TIMEOUT_S = 10.0
DISCORD_LIMIT = 2000
QUEUE_SIZE = 1000


class Kind(StrEnum):
    ROTATION_COMPLETED = "rotation_completed"
    ROTATION_FAILING = "rotation_failing"
    ACK_MISSING = "ack_missing"
    KEY_ESCALATED = "key_escalated"
    PASSWORD_CHANGE = "password_change_detected"  # noqa: S105 (a kind name, not a password)
    MASTER_EXPIRING = "master_key_expiring"
    KEY_REMINDER = "tracked_key_expiring"
    VAULT_UNREACHABLE = "vault_unreachable"
    BYBIT_UNREACHABLE = "bybit_unreachable"


SEVERITY = {
    Kind.ROTATION_COMPLETED: "info",
    Kind.ROTATION_FAILING: "warning",
    Kind.ACK_MISSING: "warning",
    Kind.KEY_ESCALATED: "critical",
    Kind.PASSWORD_CHANGE: "critical",
    Kind.MASTER_EXPIRING: "warning",
    Kind.KEY_REMINDER: "warning",
    Kind.VAULT_UNREACHABLE: "critical",
    Kind.BYBIT_UNREACHABLE: "warning",
}
_ICON = {"info": "✅", "warning": "⚠️", "critical": "🚨"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    kind: Kind
    subject: str  # the key, account or service the notice is about: the rate-limit scope
    title: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # machine-readable, for webhooks

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


class NotifyError(Exception):
    """A channel could not deliver (message says why, never the URL or token)."""


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, notice: Notice, suppressed: int, client: httpx.Client) -> None: ...


# ---------------------------------------------------------------------------------- channels
def _read_source(env_name: str | None, file: Path | None, what: str) -> Secret:
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NotifyError(f"cannot read the {what} file {file}: {exc.strerror}") from None
    else:
        value = os.environ.get(env_name or "", "").strip()
    if not value:
        raise NotifyError(f"the {what} ({file or '$' + str(env_name)}) is empty or unset")
    return Secret(value)


def render_text(notice: Notice, suppressed: int) -> str:
    text = f"{_ICON[notice.severity]} {notice.title}\n{notice.text}"
    if suppressed:
        text += f"\n({suppressed} similar message(s) held back since the last one)"
    return SECRET_REGISTRY.scrub(text)


def _post(client: httpx.Client, url: Secret, body: Mapping[str, Any]) -> None:
    host = urlsplit(url.reveal()).hostname or "?"
    try:
        response = client.post(url.reveal(), json=body)
    except httpx.HTTPError as exc:
        # httpx puts the URL (and so a token) in some messages: name the class only.
        raise NotifyError(f"{host}: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise NotifyError(f"{host} answered HTTP {response.status_code}")


@dataclass(frozen=True, slots=True)
class SlackChannel:
    config: NotifyChannel

    @property
    def name(self) -> str:
        return self.config.name or "slack"

    def send(self, notice: Notice, suppressed: int, client: httpx.Client) -> None:
        url = _read_source(self.config.url_env, self.config.url_file, "Slack webhook URL")
        _post(client, url, {"text": render_text(notice, suppressed)})


@dataclass(frozen=True, slots=True)
class DiscordChannel:
    config: NotifyChannel

    @property
    def name(self) -> str:
        return self.config.name or "discord"

    def send(self, notice: Notice, suppressed: int, client: httpx.Client) -> None:
        url = _read_source(self.config.url_env, self.config.url_file, "Discord webhook URL")
        content = render_text(notice, suppressed)[:DISCORD_LIMIT]
        _post(client, url, {"content": content, "allowed_mentions": {"parse": []}})


@dataclass(frozen=True, slots=True)
class TelegramChannel:
    config: NotifyChannel
    api_base: str = TELEGRAM_API  # tests point it at a local server

    @property
    def name(self) -> str:
        return self.config.name or "telegram"

    def send(self, notice: Notice, suppressed: int, client: httpx.Client) -> None:
        token = _read_source(
            self.config.bot_token_env, self.config.bot_token_file, "Telegram bot token"
        )
        url = Secret(f"{self.api_base.rstrip('/')}/bot{token.reveal()}/sendMessage")
        body = {
            "chat_id": self.config.chat_id,
            "text": render_text(notice, suppressed),
            "disable_web_page_preview": True,
        }
        _post(client, url, body)


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    config: NotifyChannel

    @property
    def name(self) -> str:
        return self.config.name or "webhook"

    def send(self, notice: Notice, suppressed: int, client: httpx.Client) -> None:
        url = _read_source(self.config.url_env, self.config.url_file, "webhook URL")
        body = {
            "source": "bybit-key-rotator",
            "kind": notice.kind.value,
            "severity": notice.severity,
            "subject": notice.subject,
            "title": SECRET_REGISTRY.scrub(notice.title),
            "text": SECRET_REGISTRY.scrub(notice.text),
            "suppressed": suppressed,
            "fields": {
                k: SECRET_REGISTRY.scrub(v) if isinstance(v, str) else v
                for k, v in notice.fields.items()
            },
        }
        _post(client, url, body)


def build_channels(cfg: NotifyConfig, *, telegram_api_base: str | None = None) -> list[Channel]:
    channels: list[Channel] = []
    for ch in cfg.channels:
        if ch.type == "slack":
            channels.append(SlackChannel(ch))
        elif ch.type == "discord":
            channels.append(DiscordChannel(ch))
        elif ch.type == "telegram":
            channels.append(TelegramChannel(ch, telegram_api_base or TELEGRAM_API))
        else:
            channels.append(WebhookChannel(ch))
    return channels


# ---------------------------------------------------------------------------------- notifier
class Notifier:
    """Rate-limits notices per kind and subject and sends them to every channel, off-thread."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        min_interval: timedelta,
        clock: Clock,
        on_outcome: Callable[[str, str, str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.channels = list(channels)
        self.min_interval = min_interval
        self.clock = clock
        self._on_outcome = on_outcome
        self._last: dict[tuple[Kind, str], datetime] = {}
        self._held: dict[tuple[Kind, str], int] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Notice, int] | None] = queue.Queue(QUEUE_SIZE)
        # Made at the first delivery: an httpx.Client loads the CA bundle (1 to 3 MB of RSS),
        # and a service with no channel never sends.
        self._transport = transport
        self._client: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        self._master_sent: dict[tuple[str, float], int] = {}  # (account, expiry) -> threshold
        # Accounts whose master key has a [[tracked]] entry: its reminders replace the
        # in-memory master_key_expiring thresholds (remembered across restarts, no double).
        self.tracked_masters: frozenset[str] = frozenset()

    @classmethod
    def from_config(
        cls,
        cfg: NotifyConfig,
        *,
        clock: Clock,
        on_outcome: Callable[[str, str, str], None] | None = None,
        telegram_api_base: str | None = None,
    ) -> Notifier:
        return cls(
            build_channels(cfg, telegram_api_base=telegram_api_base),
            min_interval=cfg.min_interval,
            clock=clock,
            on_outcome=on_outcome,
        )

    # ---- rate limit
    def notify(self, notice: Notice) -> bool:
        """Queue the notice unless one of its kind and subject went out within min_interval.
        Returns True if queued."""
        if not self.channels:
            return False
        scope = (notice.kind, notice.subject)
        now = self.clock.now()
        with self._lock:
            last = self._last.get(scope)
            if last is not None and now - last < self.min_interval:
                self._held[scope] = self._held.get(scope, 0) + 1
                self._outcome("-", notice.kind, "suppressed")
                log.debug("notification.suppressed", kind=notice.kind.value, subject=notice.subject)
                return False
            self._last[scope] = now
            suppressed = self._held.pop(scope, 0)
        try:
            self._queue.put_nowait((notice, suppressed))
        except queue.Full:
            log.warning("notification.dropped", kind=notice.kind.value, reason="queue full")
            return False
        self._start()
        return True

    # ---- delivery
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rotator-notify", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self.deliver(*item)
            finally:
                self._queue.task_done()

    def deliver(self, notice: Notice, suppressed: int = 0) -> None:
        """Send to every channel now (the background thread's work; tests call it directly)."""
        for channel in self.channels:
            try:
                channel.send(notice, suppressed, self._http())
            except NotifyError as exc:
                log.warning(
                    "notification.failed",
                    channel=channel.name,
                    kind=notice.kind.value,
                    subject=notice.subject,
                    error=str(exc),
                )
                self._outcome(channel.name, notice.kind, "failed")
            except Exception as exc:  # noqa: BLE001 (a channel bug must not stop the others)
                log.error("notification.crashed", channel=channel.name, error=type(exc).__name__)
                self._outcome(channel.name, notice.kind, "failed")
            else:
                log.info(
                    "notification.sent",
                    channel=channel.name,
                    kind=notice.kind.value,
                    subject=notice.subject,
                )
                self._outcome(channel.name, notice.kind, "sent")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until queued notices are sent (or timeout). True if the queue drained."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        thread = self._thread
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            thread.join(timeout_s)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=SEND_TIMEOUT_S, transport=self._transport)
            return self._client

    def _outcome(self, channel: str, kind: Kind, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(channel, kind.value, outcome)

    # ---- what a reconcile means to a human
    def observe(self, result: ReconcileResult, now: datetime) -> list[Notice]:
        """Notices for one reconcile result; each goes through `notify` (and its rate limit)."""
        notices = [*self._key_notices(result), *self._account_notices(result, now)]
        for notice in notices:
            self.notify(notice)
        return notices

    def _key_notices(self, result: ReconcileResult) -> list[Notice]:
        out: list[Notice] = []
        for k in result.keys:
            where = f"key {k.name} (account {k.account}, sub UID {k.sub_uid})"
            base = {"key": k.name, "account": k.account, "sub_uid": k.sub_uid}
            expires = k.expires_at.isoformat() if k.expires_at else None
            if k.completed:
                out.append(
                    Notice(
                        kind=Kind.ROTATION_COMPLETED,
                        subject=k.name,
                        title=f"Rotated {k.name}",
                        text=f"{where} has a new key (expires {expires or 'never'}); "
                        "the old key was revoked.",
                        fields={**base, "expires_at": expires, "rotations": k.rotations},
                    )
                )
            if k.escalated:
                out.append(
                    Notice(
                        kind=Kind.KEY_ESCALATED,
                        subject=k.name,
                        title=f"{k.name} needs a human",
                        text=f"{where} expires {expires or '?'} and its rotation has not "
                        f"succeeded: {k.last_error or k.reason}. See docs/runbook.md.",
                        fields={**base, "expires_at": expires, "error": k.last_error},
                    )
                )
            elif k.state == "awaiting_ack":
                out.append(
                    Notice(
                        kind=Kind.ACK_MISSING,
                        subject=k.name,
                        title=f"{k.name}: the bot has not confirmed the new key",
                        text=f"{where}: {k.reason}. Check that the bot reloaded its key "
                        "(docs/runbook.md, RotatorAckMissing).",
                        fields={**base, "revoke_at": k.next_at.isoformat() if k.next_at else None},
                    )
                )
            elif k.failure is not None or (k.state == "failed" and k.last_error):
                out.append(
                    Notice(
                        kind=Kind.ROTATION_FAILING,
                        subject=k.name,
                        title=f"Rotation of {k.name} is failing",
                        text=f"{where}: {k.last_error or k.reason}. Next try "
                        f"{k.next_at.isoformat() if k.next_at else 'next reconcile'}; the old "
                        "key stays in use.",
                        fields={**base, "failure": k.failure, "error": k.last_error},
                    )
                )
        return out

    def _account_notices(self, result: ReconcileResult, now: datetime) -> list[Notice]:
        out: list[Notice] = []
        for a in result.accounts:
            if a.password_change_detected_now:
                out.append(
                    Notice(
                        kind=Kind.PASSWORD_CHANGE,
                        subject=a.name,
                        title=f"Password change detected on account {a.name}",
                        text="After a login password change Bybit disables API keys 7 days "
                        "later (its pages say the IP-unbound ones, the seed guide says all). The "
                        "rotator is replacing the managed keys its password_change_scope names; "
                        "the MASTER key cannot be rotated by API: check it, and if Bybit now "
                        "reports an expiry for it, replace it by hand in Vault.",
                        fields={"account": a.name},
                    )
                )
            expiry = a.master_expires_at
            if not a.master_ok or expiry is None or a.name in self.tracked_masters:
                continue
            left = expiry - now
            crossed = [t for t in MASTER_THRESHOLDS_DAYS if left <= timedelta(days=t)]
            if not crossed:
                continue
            threshold = min(crossed)
            scope = (a.name, expiry.timestamp())
            if self._master_sent.get(scope, 10**9) <= threshold:
                continue
            self._master_sent[scope] = threshold
            days = max(left.total_seconds() / 86400, 0)
            out.append(
                Notice(
                    kind=Kind.MASTER_EXPIRING,
                    subject=f"{a.name}:{threshold}d",
                    title=f"Master key of {a.name} expires in {days:.1f} days",
                    text=f"The master key of account {a.name} expires {expiry.isoformat()}. No "
                    "API can renew a master key: create a new one in the Bybit web UI and store "
                    "it in Vault (docs/runbook.md).",
                    fields={"account": a.name, "expires_at": expiry.isoformat()},
                )
            )
        return out

    def unreachable(self, service: str, error: str) -> None:
        kind = Kind.VAULT_UNREACHABLE if service == "vault" else Kind.BYBIT_UNREACHABLE
        name = "Vault" if service == "vault" else "Bybit"
        self.notify(
            Notice(
                kind=kind,
                subject=service,
                title=f"The rotator cannot reach {name}",
                text=f"{error}. Rotations wait until {name} answers again; keys keep working "
                "until they expire.",
                fields={"service": service, "error": error},
            )
        )


_TRACKED_WHAT = {
    TrackedKind.MASTER: "the master key of account {account}",
    TrackedKind.SUB_KEY: "tracked key {name} (account {account}, sub UID {sub_uid})",
    TrackedKind.KEY: "tracked key {name} (account {account})",
}
_TRACKED_FIX = {
    TrackedKind.MASTER: "No API can renew a master key: create a new one in the Bybit web UI and "
    "store it in Vault (docs/runbook.md).",
    TrackedKind.SUB_KEY: "The rotator does not rotate this key: replace it in the Bybit web UI, "
    "give it to its bot, and update key_fp in [[tracked]].",
    TrackedKind.KEY: "The rotator does not rotate this key: replace it in the Bybit web UI, give "
    "it to its bot, and store the new one at its Vault path.",
}


def reminder_notice(reminder: Reminder) -> Notice:
    """The chat message for one tracked-key reminder (rotator/reminders.py)."""
    key = reminder.key
    what = _TRACKED_WHAT[key.kind].format(name=key.name, account=key.account, sub_uid=key.sub_uid)
    left = max(reminder.days_left, 0)
    expires = reminder.expires_at.isoformat()
    state = "has expired" if reminder.days_left <= 0 else f"expires in {left:.1f} days"
    return Notice(
        kind=Kind.KEY_REMINDER,
        subject=f"{key.name}:{reminder.days_before}d",
        title=f"{what[0].upper()}{what[1:]} {state}",
        text=f"{what[0].upper()}{what[1:]} expires {expires} (reminder {reminder.days_before} "
        f"days before). {_TRACKED_FIX[key.kind]}",
        fields={
            "tracked": key.name,
            "account": key.account,
            "kind": key.kind.value,
            "expires_at": expires,
            "days_before": reminder.days_before,
        },
    )
