"""`/status`: a read-only HTML page of what the daemon last saw, for operators without Grafana.

Every managed key (state, expiry, days left, next action, when and why, last rotation, last
error), every account (master key reachable, its expiry, password change, orphans) and the keys
tracked for reminders. Built only from the daemon's last reports: serving the page calls neither
Vault nor Bybit, so reloading it costs nothing and reveals nothing new.

Nothing secret and no full key id: key ids are shown as `short_key_id` (4 + 2 characters) and
error texts pass through the log redactor's registry of known secrets. Every value is
HTML-escaped. No JavaScript and no external resource: one inline style sheet, allowed by the
Content-Security-Policy in `SECURITY_HEADERS`, which the listener sends with the page; a
`<meta http-equiv="refresh">` reloads it every minute.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rotator.key_report import AccountReport, KeyReport, ReportState
from rotator.model import SECRET_REGISTRY, short_key_id

REFRESH_S = 60
WARN_DAYS = 14.0  # days left at or below which a row is amber
CRITICAL_DAYS = 3.0  # ... and red

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CONTENT_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedRow:
    """A key tracked for reminders only (never rotated)."""

    name: str
    account: str
    kind: str  # master | sub_key | key
    expires_at: datetime | None
    next_reminder: str  # "7 days before (2026-03-04)", "none left", ...
    last_sent: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusView:
    now: datetime
    phase: str  # starting | running | stopping
    vault_ok: bool | None  # None: not probed yet
    bybit_ok: bool | None
    keys: Sequence[KeyReport] = ()
    accounts: Sequence[AccountReport] = ()
    last_reconcile: Mapping[str, datetime] = field(default_factory=dict)
    tracked: Sequence[TrackedRow] = ()


def _e(value: object) -> str:
    """Escaped text of anything, with known secrets replaced first."""
    if value is None:
        return "—"
    return html.escape(SECRET_REGISTRY.scrub(str(value)), quote=True)


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else _e(f"{moment:%Y-%m-%d %H:%M}Z")


def days_left(expires_at: datetime | None, now: datetime) -> float | None:
    if expires_at is None:
        return None
    return (expires_at - now).total_seconds() / 86400


def _days_cell(expires_at: datetime | None, now: datetime, *, failing: bool = False) -> str:
    left = days_left(expires_at, now)
    if left is None:
        return '<td class="num">never</td>'
    level = "ok"
    if left <= WARN_DAYS or failing:
        level = "warn"
    if left <= CRITICAL_DAYS:
        level = "crit"
    return f'<td class="num {level}">{left:.1f}</td>'


def _yes_no(value: bool | None) -> str:
    if value is None:
        return '<span class="warn">not yet checked</span>'
    return '<span class="ok">yes</span>' if value else '<span class="crit">no</span>'


_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1d2330;
background:#fff}
h1{font-size:1.3rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.6rem 0 .4rem}
p.meta{color:#555;margin:.2rem 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3rem .55rem;border-bottom:1px solid #e2e5ea;vertical-align:top}
th{background:#f3f5f8;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code{font:12px ui-monospace,monospace}
.ok{color:#17702f}.warn{color:#9a5b00;font-weight:600}.crit{color:#b3261e;font-weight:700}
.state{font-weight:600}.why{color:#444;max-width:32rem}
"""


def render(view: StatusView) -> str:
    """The whole page: deterministic for a given view (tests compare it as text)."""
    now = view.now
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        "<title>rotator status</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>bybit-key-rotator</h1>",
        (
            f'<p class="meta">As of {_when(now)} · daemon {_e(view.phase)} · Vault reachable '
            f"{_yes_no(view.vault_ok)} · Bybit reachable {_yes_no(view.bybit_ok)} · read-only, "
            f"reloads every {REFRESH_S}s</p>"
        ),
        *_keys_table(view),
        *_accounts_table(view),
        *_tracked_table(view),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


KEY_COLUMNS = (
    "key",
    "account",
    "sub UID",
    "key id",
    "state",
    "expires",
    "days left",
    "next action",
    "when",
    "why",
    "last rotation",
    "rotations",
)
ACCOUNT_COLUMNS = (
    "account",
    "master key works",
    "master key expires",
    "days left",
    "password change",
    "orphan keys",
    "last reconcile",
    "error",
)
TRACKED_COLUMNS = (
    "name",
    "account",
    "kind",
    "expires",
    "days left",
    "next reminder",
    "last reminder",
    "error",
)
NOTHING_YET = "No reconcile has finished yet."


def _table(title: str, columns: Sequence[str], rows: Sequence[str]) -> list[str]:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = rows or [f'<tr><td colspan="{len(columns)}">{NOTHING_YET}</td></tr>']
    return [
        f"<h2>{_e(title)}</h2>",
        f"<table><thead><tr>{head}</tr></thead><tbody>",
        *body,
        "</tbody></table>",
    ]


def _keys_table(view: StatusView) -> list[str]:
    rows = [_key_row(k, view.now) for k in sorted(view.keys, key=lambda r: r.name)]
    return _table("Managed keys", KEY_COLUMNS, rows)


def _key_row(k: KeyReport, now: datetime) -> str:
    failing = k.state in (ReportState.FAILED, ReportState.ESCALATED)
    state_class = "crit" if failing else ("ok" if k.state == ReportState.IDLE else "warn")
    why = k.reason
    if k.last_error and k.last_error not in why:
        why = f"{why} (last error: {k.last_error})"
    key_id = f"<code>{_e(short_key_id(k.key_id))}</code>" if k.key_id else "—"
    return (
        f"<tr><td>{_e(k.name)}</td><td>{_e(k.account)}</td><td>{_e(k.sub_uid)}</td>"
        f'<td>{key_id}</td><td class="state {state_class}">{_e(k.state)}</td>'
        f"<td>{_when(k.expires_at)}</td>{_days_cell(k.expires_at, now, failing=failing)}"
        f"<td>{_e(k.next_action or '—')}</td><td>{_when(k.next_at)}</td>"
        f'<td class="why">{_e(why or "—")}</td><td>{_when(k.last_rotation_at)}</td>'
        f'<td class="num">{_e(k.rotations)}</td></tr>'
    )


def _accounts_table(view: StatusView) -> list[str]:
    rows = [_account_row(a, view) for a in sorted(view.accounts, key=lambda r: r.name)]
    return _table("Accounts and master keys", ACCOUNT_COLUMNS, rows)


def _account_row(a: AccountReport, view: StatusView) -> str:
    expiry = a.master_expires_at if a.master_ok else None
    days = _days_cell(expiry, view.now) if a.master_ok else "<td>—</td>"
    return (
        f"<tr><td>{_e(a.name)}</td><td>{_yes_no(a.master_ok)}</td>"
        f"<td>{(_when(expiry) if expiry else 'never') if a.master_ok else '—'}</td>{days}"
        f"<td>{_when(a.password_changed_at)}{_password_pending(a)}</td>"
        f'<td class="num">{"—" if a.orphans is None else len(a.orphans)}</td>'
        f"<td>{_when(view.last_reconcile.get(a.name))}</td>"
        f'<td class="why">{_e(a.error)}</td></tr>'
    )


def _password_pending(a: AccountReport) -> str:
    """A password change is news while keys await their forced rotation, history after."""
    if a.password_changed_at is None or not a.password_change_pending_keys:
        return ""
    return f" ({a.password_change_pending_keys} key(s) still to rotate)"


def _tracked_table(view: StatusView) -> list[str]:
    if not view.tracked:
        return []
    rows = [_tracked_row(t, view.now) for t in sorted(view.tracked, key=lambda r: r.name)]
    return _table("Tracked keys (reminders only, never rotated)", TRACKED_COLUMNS, rows)


def _tracked_row(t: TrackedRow, now: datetime) -> str:
    return (
        f"<tr><td>{_e(t.name)}</td><td>{_e(t.account)}</td><td>{_e(t.kind)}</td>"
        f"<td>{_when(t.expires_at) if t.expires_at or t.error else 'never'}</td>"
        f"{_days_cell(t.expires_at, now) if not t.error else '<td>—</td>'}"
        f"<td>{_e(t.next_reminder)}</td><td>{_e(t.last_sent)}</td>"
        f'<td class="why">{_e(t.error)}</td></tr>'
    )
