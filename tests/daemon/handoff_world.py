"""A daemon on the virtual clock against the real simulator and OpenBao, for the status page and
reminder tests: `make_daemon(config_text)` builds one, `config(...)` writes its TOML."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from rotator.adapters.bybit import BybitClient
from rotator.adapters.metrics import Metrics
from rotator.config import parse
from rotator.daemon import Daemon
from rotator.wiring import build

BASE = """
[bybit]
base_url = "{sim}"
[vault]
address = "{vault}"
prefix = "{prefix}"
[vault.auth]
method = "token"
token_env = "T_HANDOFF_VAULT_TOKEN"
[policy]
reconcile_interval = "10m"
grace_period = "1h"
[metrics]
enabled = {metrics}
listen = "127.0.0.1:{port}"
[[accounts]]
name = "main"
[[keys]]
name = "bot1"
account = "main"
sub_uid = 2001
permissions = {{ ContractTrade = ["Order", "Position"] }}
[[keys]]
name = "bot2"
account = "main"
sub_uid = 2002
permissions = {{ Spot = ["SpotTrade"] }}
"""


def manual_builder(clock):
    """wiring.build, but the Bybit client's rate-limit waits move the virtual clock."""

    def builder(cfg, **kw):
        runtime = build(cfg, **kw)
        runtime.exchange.close()
        client = BybitClient(
            cfg.bybit.url,
            clock=clock,
            sleep=lambda s: clock.advance(timedelta(seconds=s)),
            observer=kw.get("on_bybit_request"),
            timeout_s=5,
        )
        runtime.exchange = client
        runtime.engine.exchange = client
        return runtime

    return builder


def make_daemon(text: str, clock, path=None, **kw) -> Daemon:
    return Daemon(
        parse(text, source=str(path or "t.toml")),
        config_path=path,
        clock=clock,
        metrics=Metrics(),
        builder=manual_builder(clock),
        **kw,
    )


def close(daemon: Daemon) -> None:
    """What a clean stop leaves behind: with leader election, the leases are released too, so
    the next daemon of a test (a restart) acts at once."""
    for lease in dict(getattr(daemon, "leases", {})).values():
        with contextlib.suppress(Exception):
            lease.release()
    daemon.notifier.close()
    daemon.runtime.close()
    if daemon.http is not None:
        daemon.http.close()
