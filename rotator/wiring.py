"""Builds the adapters and the engine from a config: one place, shared by `run` and the CLI."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from rotator.adapters.bybit import BybitClient, RequestObservation
from rotator.adapters.vault import VaultStore
from rotator.clock import Clock, SystemClock
from rotator.config import Config, managed_accounts, managed_keys
from rotator.ports import HandOff
from rotator.progress import Observer, ignore
from rotator.rotation import Engine


@dataclass
class Runtime:
    config: Config
    clock: Clock
    store: VaultStore
    exchange: BybitClient
    engine: Engine

    def close(self) -> None:
        self.exchange.close()


def build(
    cfg: Config,
    *,
    clock: Clock | None = None,
    handoff: HandOff | None = None,
    owner: str | None = None,
    on_vault_error: Callable[[str], None] | None = None,
    on_bybit_request: Callable[[RequestObservation], None] | None = None,
    observer: Observer = ignore,
) -> Runtime:
    """Wire Vault, Bybit and the engine (which tells `observer` of its progress). Nothing is
    contacted until first use."""
    clock = clock or SystemClock()
    store = VaultStore.from_config(cfg.vault, clock=clock, on_error=on_vault_error)
    exchange = BybitClient(
        cfg.bybit.url,
        clock=clock,
        recv_window_ms=cfg.bybit.recv_window_ms,
        timeout_s=cfg.bybit.timeout.total_seconds(),
        max_retries=cfg.bybit.max_retries,
        observer=on_bybit_request,
    )
    engine = Engine(
        exchange=exchange,
        store=store,
        clock=clock,
        accounts=managed_accounts(cfg),
        keys=managed_keys(cfg),
        handoff=handoff,
        owner=owner or socket.gethostname(),
        observer=observer,
    )
    return Runtime(config=cfg, clock=clock, store=store, exchange=exchange, engine=engine)
