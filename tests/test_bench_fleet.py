"""bench/fleet.py at a tiny size (20 keys), every part, so the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fleet.py"


@pytest.fixture(name="fleet", scope="module")
def _fleet():
    spec = importlib.util.spec_from_file_location("bench_fleet", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = module
    spec.loader.exec_module(module)
    return module


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip("|").split("|")]


def test_every_part_runs_at_tiny_size(fleet, bao, tmp_path, monkeypatch):
    monkeypatch.setenv(fleet.TOKEN_ENV, bao.root_token)
    tiny = "--keys 20 --subs 4 --masters 1,2 --rotate-keys 2 --rss-keys 20 --naive-keys 10"
    args = fleet.arguments([*tiny.split(), "--top", "3", "--scrape-keys", "20"])
    reconcile = fleet.part_reconcile(tmp_path, bao, args)
    assert len(reconcile) == 4  # header, rule, one row per master count
    one = cells(reconcile[2])
    assert one[:3] == ["1", "20", "4"]
    # Per sub UID: its one listing page, plus the master's query-api shared by the subs.
    assert 1 <= float(one[6]) <= 2
    assert int(one[9].replace(",", "")) >= 20 * 8  # a few series per key, every key there

    rotation = fleet.part_rotation(tmp_path, bao, args)
    assert [cells(r)[1] for r in rotation[2:]] == ["2", "2"]  # every due key rotated

    daemon = fleet.part_daemon(tmp_path, bao, args)
    row = cells(daemon[2])
    assert row[:2] == ["this", "20"]
    assert re.fullmatch(r"\d+ MB", row[4])
    assert re.fullmatch(r"\d+ / \d+ ms, [\d.]+ MB", row[6])

    naive = fleet.part_naive(tmp_path, bao, args)
    assert cells(naive[2])[0] == "10"

    memory = fleet.part_memory(tmp_path, bao, args)
    assert memory[0].startswith("20 keys:")
    assert len(memory) == 4 + 3

    scrape = fleet.part_scrape(tmp_path, bao, args)
    row = cells(scrape[2])
    assert row[:2] == ["this", "20"]
    assert row[6] == f"{20 * 8 + 58}"  # 8 per key, and the daemon's own
    assert row[7] == "8"

    imports = fleet.part_imports(tmp_path, bao, args)
    row = cells(imports[2])
    assert row[0] == "this"
    assert re.fullmatch(r"[\d.]+ MB", row[1])
    assert "cryptography" not in row[3]
