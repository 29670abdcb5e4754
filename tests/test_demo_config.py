"""The demo config exists once, as package data, and the demo writes it as valid TOML."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rotator import config
from rotator.demo import demo_config_text, forget_vault_environment, packaged_config

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_runs_the_packaged_config_with_its_own_addresses(tmp_path: Path) -> None:
    """Keys, policy and hooks come from rotator/data/demo.toml; addresses and paths are the
    demo's, whatever characters the output folder's name holds (quotes, backslash, newline)."""
    out_dir = tmp_path / 'a "quoted"\\ name\nwith a newline, ü'
    text = demo_config_text(
        bybit_url="http://127.0.0.1:18081",
        vault_address="http://127.0.0.1:18201",
        metrics_listen="127.0.0.1:19465",
        out_dir=out_dir,
    )
    cfg = config.parse(text, source="demo config")
    assert [k.name for k in cfg.keys] == [k["name"] for k in packaged_config()["keys"]]
    assert cfg.policy.key_lifetime == timedelta(seconds=60)
    assert cfg.bybit.base_url == "http://127.0.0.1:18081"
    assert cfg.vault.address == "http://127.0.0.1:18201"
    assert cfg.metrics.listen == "127.0.0.1:19465"
    assert cfg.keys[0].hooks[0].path == out_dir / "bot-alpha.env"


def test_no_second_copy_of_the_demo_config() -> None:
    """config/ holds only the example; the demo's config is the package's."""
    assert not (ROOT / "config" / "demo.toml").exists()
    assert (ROOT / "rotator" / "data" / "demo.toml").is_file()


def test_a_shell_set_up_for_a_real_vault_does_not_steer_the_demo(tmp_path: Path) -> None:
    """VAULT_NAMESPACE, VAULT_CACERT, VAULT_CAPATH (and VAULT_ADDR) are dropped before the demo
    loads its config: its OpenBao has no namespace and no TLS. Other variables stay."""
    env = {
        "VAULT_ADDR": "https://vault.corp:8200",
        "VAULT_NAMESPACE": "team",
        "VAULT_CACERT": "/etc/corp-ca.pem",
        "VAULT_CAPATH": "/etc/corp-ca",
        "PATH": "/usr/bin",
    }
    forget_vault_environment(env)
    assert env == {"PATH": "/usr/bin"}
    text = demo_config_text(
        bybit_url="http://127.0.0.1:18081",
        vault_address="http://127.0.0.1:18201",
        metrics_listen="127.0.0.1:19465",
        out_dir=tmp_path,
    )
    cfg = config.parse(text, env=env)
    assert (cfg.vault.namespace, cfg.vault.ca_cert) == (None, None)
