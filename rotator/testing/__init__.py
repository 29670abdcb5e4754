"""In-memory fakes of the engine's ports, for tests that need no server.

`MemoryStore` (KV v2: versions, check-and-set, destroy, list) and `MemoryExchange` (Bybit's
sub-account key endpoints as the engine uses them). Both pass the same contract suite as the real
adapters (`tests/contract/`: MemoryStore beside `VaultStore` on OpenBao, MemoryExchange beside
`BybitClient` on the simulator), so a test written against a fake says something about the real
thing. Product code never imports this package (an import-linter contract keeps it so); it lives
in `rotator/` rather than `tests/` so that mypy strict holds the fakes to the port protocols and
benchmarks or a notebook can build an engine without servers.
"""

from typing import TYPE_CHECKING

from rotator.testing.memory_exchange import MemoryExchange
from rotator.testing.memory_store import MemoryStore

if TYPE_CHECKING:
    from rotator.ports import Exchange, KeyStore

    def _conforms(store: MemoryStore, exchange: MemoryExchange) -> tuple[KeyStore, Exchange]:
        """mypy holds the fakes to the ports: this stops type-checking if one drifts."""
        return store, exchange


__all__ = ["MemoryExchange", "MemoryStore"]
