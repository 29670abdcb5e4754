"""Fixtures of the multi-replica tests: a `Cluster` of real processes per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster import Cluster, Timing

from fixtures.vault import BaoServer, free_port


@pytest.fixture(name="make_cluster")
def _make_cluster(bao: BaoServer, vault_prefix: str, tmp_path) -> Iterator:
    made: list[Cluster] = []

    def make(timing: Timing | None = None, replicas: int = 3) -> Cluster:
        cluster = Cluster(
            tmp=tmp_path,
            bao=bao,
            prefix=vault_prefix,
            free_port=free_port,
            timing=timing,
            replicas=replicas,
        )
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
