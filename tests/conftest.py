"""Shared fixtures. The real servers live in tests/fixtures/: OpenBao (vault.py), the Bybit
simulator (simulator.py). Both listen on 127.0.0.1 only."""

from rotator.model import SECRET_REGISTRY

pytest_plugins = ["fixtures.vault", "fixtures.simulator"]

# Tests search their outputs for every secret they made, also those already forgotten by the
# (bounded) redaction registry.
SECRET_REGISTRY.witness = set()
