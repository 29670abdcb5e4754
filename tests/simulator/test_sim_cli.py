"""`rotator simulate` as a real subprocess: the listening line, a request, SIGTERM, bad seeds."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest
from rotator.errors import ConfigError
from rotator.simulator.seed import load_seed

SEED = """
[options]
key_lifetime = "30d"

[[accounts]]
uid = 1000
api_key = "MASTERKEY0000000001"
api_secret = "MASTERSECRET00000000000000000000001"   # or: rsa_public_key = '''PEM'''
sub_uids = [2001, 2002]

[[accounts.keys]]
uid = 2001
api_key = "SUBKEY000000000001"
api_secret = "SUBSECRET0000000000000000000000001"
permissions = { ContractTrade = ["Order", "Position"] }
created_at = 2026-01-01T00:00:00Z
"""


def simulate(*args):
    return [sys.executable, "-m", "rotator", "simulate", *args]


def test_simulate_serves_until_sigterm(tmp_path):
    seed = tmp_path / "seed.toml"
    seed.write_text(SEED)
    proc = subprocess.Popen(
        simulate(
            "--listen",
            "127.0.0.1:0",
            "--seed",
            str(seed),
            "--manual-clock",
            "--key-lifetime",
            "3months",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        url = line.removeprefix("simulator listening on ")
        state = httpx.get(f"{url}/_sim/state").json()
        sub = next(a for a in state["accounts"] if a["uid"] == 2001)
        assert [k["apiKey"] for k in sub["keys"]] == ["SUBKEY000000000001"]
        assert sub["keys"][0]["expiredAt"] == "2026-04-01T00:00:00Z"  # +3 months beats 30d
        assert httpx.get(f"{url}/_sim/clock").json()["manual"] is True
        assert httpx.get(f"{url}/v5/market/time").json()["retCode"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == ""
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[accounts]]\nuid = 'x'\napi_key = 'K'\napi_secret = 'S'\n", "accounts[0].uid"),
        ("[[accounts]]\nuid = 1\napi_key = 'K'\n", "accounts[0].api_secret"),
        ("[[accounts]]\nuid = 1\napi_key = 'K'\napi_secret = 'S'\nbogus = 1\n", "bogus"),
        ("[options]\nnope = 1\n[[accounts]]\nuid = 1\napi_key = 'K'\napi_secret = 'S'\n", "nope"),
        ("not toml [", "not valid TOML"),
        ("[[accounts]]\nuid = 1\napi_key = 'K'\nrsa_public_key = 'junk'\n", "accounts[0]"),
    ],
)
def test_bad_seed_exits_2_without_traceback(tmp_path, text, needle):
    seed = tmp_path / "bad.toml"
    seed.write_text(text)
    proc = subprocess.run(
        simulate("--listen", "127.0.0.1:0", "--seed", str(seed)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert str(seed) in proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_seed_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_seed(tmp_path / "absent.toml")
