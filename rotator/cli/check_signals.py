"""`rotator check` sections about signals (issue 11): the clock offset to Bybit, and what to do
about an expiring master key given what is known about password changes. Kept apart from
check.py so that the sections other work adds there stay separate."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from rotator.clock_offset import CLOCK_OFFSET_WARN, offset_is_large
from rotator.durations import format_duration
from rotator.errors import RotatorError
from rotator.password_change import PasswordChangeScope

if TYPE_CHECKING:
    from rotator import wiring
    from rotator.config import Config
    from rotator.model import ExchangeKey

NTP_FIX = (
    "enable time synchronisation: `timedatectl set-ntp true` (systemd-timesyncd) or "
    "`apt-get install chrony`; `timedatectl` shows 'System clock synchronized: yes' when done"
)


class Report(Protocol):
    def ok(self, text: str) -> None: ...
    def warn(self, text: str, fix: str = "") -> None: ...


def check_clock(cfg: Config, runtime: wiring.Runtime, out: Report) -> None:
    """Measure the offset to Bybit's clock as the daemon does (rotator_bybit_clock_offset_seconds)
    and say what it means: signing is corrected, expiry is planned on the safe side, but a host
    clock off by more than 30 s (or half the recv_window) needs NTP."""
    try:
        offset = runtime.exchange.resync_clock()
    except RotatorError as exc:
        out.warn(f"clock: the offset to Bybit's clock could not be measured: {exc.message}")
        return
    side = "behind" if offset > timedelta(0) else "ahead of"
    size = format_duration(_shown(abs(offset)))
    window = timedelta(milliseconds=cfg.bybit.recv_window_ms)
    if offset_is_large(offset):
        out.warn(
            f"clock: this host's clock is {size} {side} Bybit's (alert RotatorClockOffset above "
            f"{format_duration(CLOCK_OFFSET_WARN)}); requests are signed with the corrected time "
            "and key expiry is planned on the safe side of the offset (docs/rotation.md, Clocks)",
            NTP_FIX,
        )
    elif abs(offset) > window / 2:
        out.warn(
            f"clock: this host's clock is {size} {side} Bybit's, more than half the recv_window "
            f"({format_duration(window)}); the client corrects it after a refused request",
            NTP_FIX,
        )
    else:
        out.ok(f"clock: within {format_duration(window / 2)} of Bybit's ({size} {side})")


def _shown(delta: timedelta) -> timedelta:
    """Whole seconds from a second on (a round trip blurs the milliseconds anyway)."""
    if delta < timedelta(seconds=1):
        return delta
    return timedelta(seconds=round(delta.total_seconds()))


def master_expiry_advice(cfg: Config, info: ExchangeKey, put_command: str) -> str:
    """The fix for an expiring master key: what is known, what is uncertain, and what the
    configured `password_change_scope` assumes. Never states that bound keys do not expire."""
    scope = cfg.policy.password_change_scope
    assumed = (
        'this config assumes all keys are affected (password_change_scope = "all")'
        if scope is PasswordChangeScope.ALL
        else 'this config assumes only unbound keys are (password_change_scope = "unbound")'
    )
    if info.is_ip_bound:
        return (
            "Bybit reports an expiry for this IP-bound master key, which is what a login password "
            "change does (known: Bybit then disables affected keys 7 days later). Create a new "
            f"master key in the web UI and {put_command}"
        )
    return (
        "create a new master key in the web UI and "
        + put_command
        + ". Binding it to your IPs makes Bybit report no fixed lifetime for it; whether a bound "
        "key survives a login password change is uncertain (Bybit's create-sub-api and "
        "update-sub-api pages: only unbound keys stop working 7 days after it; the seed guide: "
        f"all keys), and {assumed}"
    )
