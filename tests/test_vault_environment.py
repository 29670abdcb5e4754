"""Vault's standard variables (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT / VAULT_CAPATH) give the
[vault] options the file leaves out; the file wins where it sets one. Against the real OpenBao."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from rotator import config
from rotator.adapters.vault import VaultStore
from rotator.clock import SystemClock
from rotator.errors import ConfigError, StoreUnavailable

from fixtures.configs import ACCOUNT
from fixtures.vault import BaoServer, free_port

TOKEN_ENV = "T_VAULT_ENV_TOKEN"
AUTH = f'[vault.auth]\nmethod = "token"\ntoken_env = "{TOKEN_ENV}"\n'


@pytest.mark.parametrize(
    ("vault", "env", "expected"),
    [
        ("", {}, ("http://127.0.0.1:8200", None, None, {})),
        (
            "",
            {"VAULT_ADDR": "https://v:8200/", "VAULT_NAMESPACE": "team", "VAULT_CAPATH": "/c"},
            (
                "https://v:8200",
                "team",
                Path("/c"),
                {
                    "address": "VAULT_ADDR",
                    "namespace": "VAULT_NAMESPACE",
                    "ca_cert": "VAULT_CAPATH",
                },
            ),
        ),
        (  # the file wins; VAULT_CACERT comes before VAULT_CAPATH; an empty variable is unset
            'address = "http://127.0.0.1:1"\nnamespace = "mine"\n',
            {
                "VAULT_ADDR": "https://v:8200",
                "VAULT_NAMESPACE": "",
                "VAULT_CACERT": "/a.pem",
                "VAULT_CAPATH": "/c",
            },
            ("http://127.0.0.1:1", "mine", Path("/a.pem"), {"ca_cert": "VAULT_CACERT"}),
        ),
    ],
)
def test_the_file_wins_the_environment_fills_in(vault, env, expected) -> None:
    """Each option: the file's value, else the first variable set, else the built-in default."""
    cfg = config.parse(f"{ACCOUNT}[vault]\n{vault}", env=env)
    address, namespace, ca_cert, sources = expected
    assert (cfg.vault.address, cfg.vault.namespace, cfg.vault.ca_cert) == (
        address,
        namespace,
        ca_cert,
    )
    assert {o: cfg.vault.from_environment(o) for o in sources} == sources
    assert cfg.vault.from_environment("mount") is None


def test_without_a_vault_table_too() -> None:
    """A config with no [vault] at all still reads VAULT_ADDR."""
    cfg = config.parse(ACCOUNT, env={"VAULT_ADDR": "http://10.0.0.5:8200"})
    assert cfg.vault.address == "http://10.0.0.5:8200"
    assert cfg.with_discovered({}).vault.from_environment("address") == "VAULT_ADDR"


def test_a_bad_variable_is_named() -> None:
    """The message names the variable (the file has no line for it) and both fixes."""
    with pytest.raises(ConfigError) as info:
        config.parse(ACCOUNT, source="rot.toml", env={"VAULT_ADDR": "vault:8200"})
    assert "$VAULT_ADDR" in info.value.message
    assert "scheme, host and port" in info.value.message
    assert "set address in the file" in info.value.message


def _store(cfg: config.Config) -> VaultStore:
    return VaultStore.from_config(cfg.vault, clock=SystemClock())


def test_vault_addr_and_namespace_reach_openbao(
    bao: BaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config naming no address and no namespace writes into the namespace VAULT_NAMESPACE
    names, on the server VAULT_ADDR names."""
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    bao.bao("namespace", "create", namespace)
    bao.bao("secrets", "enable", f"-namespace={namespace}", "-path=secret", "kv-v2")
    monkeypatch.setenv(TOKEN_ENV, bao.root_token)
    cfg = config.parse(
        f"{ACCOUNT}{AUTH}",
        env={"VAULT_ADDR": bao.address, "VAULT_NAMESPACE": namespace},
    )
    assert _store(cfg).write("rotator/probe", {"where": "namespace"}, cas=0) == 1
    inside = json.loads(
        bao.bao("kv", "get", f"-namespace={namespace}", "-format=json", "secret/rotator/probe")
    )
    assert inside["data"]["data"] == {"where": "namespace"}
    with pytest.raises(RuntimeError, match="No value found"):
        bao.bao("kv", "get", "secret/rotator/probe")  # not in the root namespace


def test_the_file_address_wins_over_vault_addr(
    bao: BaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VAULT_ADDR names the live server, the file a closed port: the file's address is used."""
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv(TOKEN_ENV, bao.root_token)
    cfg = config.parse(
        f'{ACCOUNT}[vault]\naddress = "{closed}"\n{AUTH}', env={"VAULT_ADDR": bao.address}
    )
    with pytest.raises(StoreUnavailable, match=f"cannot reach {closed}"):
        _store(cfg).ping()
    live = config.parse(f"{ACCOUNT}{AUTH}", env={"VAULT_ADDR": bao.address})
    _store(live).ping()
