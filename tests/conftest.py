"""Shared fixtures. The real servers live in tests/fixtures/: OpenBao (vault.py), the Bybit
simulator (simulator.py). Both listen on 127.0.0.1 only."""

pytest_plugins = ["fixtures.vault", "fixtures.simulator"]
