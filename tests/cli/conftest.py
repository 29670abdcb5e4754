"""Fixtures for the operator CLI tests (helpers and the world they build: cli_env.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from cli_env import Cli, assert_no_secret
from rotator.adapters.vault import VaultStore
from rotator.clock import SystemClock
from rotator.simulator import Simulator, SimulatorOptions

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, new_simulator
from fixtures.vault import BaoServer, free_port


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each command points logging at the runner's streams, which close after it: undo that."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.fixture(name="cli")
def _cli(
    bao: BaoServer, vault_store: VaultStore, vault_prefix: str, tmp_path: Path
) -> Iterator[Cli]:
    sim = new_simulator(SystemClock(), SimulatorOptions(rate_limits_enabled=False))
    server = sim.serve("127.0.0.1", 0)
    vault_store.write(
        f"{vault_prefix}/accounts/main/master",
        {"api_key": MASTER_KEY, "api_secret": MASTER_SECRET},
        cas=0,
    )
    env = Cli(
        sim=sim,
        bao=bao,
        store=vault_store,
        prefix=vault_prefix,
        tmp=tmp_path,
        token=bao.root_token,
    )
    try:
        yield env
        assert_no_secret(env.outputs, env.secrets())
    finally:
        server.close()


@pytest.fixture(name="closed_port_url")
def _closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(name="serve_sim")
def _serve_sim() -> Iterator[Any]:
    """Start extra simulators (on the wall clock) that are closed after the test."""
    servers: list[Any] = []

    def start(sim: Simulator) -> Simulator:
        servers.append(sim.serve("127.0.0.1", 0))
        return sim

    yield start
    for server in servers:
        server.close()
