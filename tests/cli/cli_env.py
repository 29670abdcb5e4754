"""Helpers for the operator CLI tests: the CLI in-process (click's CliRunner) against a real
simulator and a real OpenBao.

The CLI wires itself from a config file with the wall clock (`wiring.build(cfg)`), so the simulator
here runs on `SystemClock` too (the shared `simulator` fixture uses a ManualClock). Rate limits are
off: with the wall clock a second create would otherwise really wait a second.

Every command's stdout and stderr are kept; at teardown each test proves no secret showed up in
them: the master secret, every consumer secret in Vault, and every value the process ever wrapped
in `Secret` (the redaction registry: the Vault token, the adopted secrets, created key secrets).
"""

from __future__ import annotations

import json
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
from click.testing import CliRunner, Result
from rotator.adapters.vault import VaultStore
from rotator.cli import cli
from rotator.model import SECRET_REGISTRY
from rotator.simulator import Simulator

from fixtures.simulator import MASTER_SECRET
from fixtures.vault import BaoServer

TOKEN_ENV = "ROTATOR_CLI_TEST_VAULT_TOKEN"
ALPHA_PERMS = {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]}
BETA_PERMS = {"ContractTrade": ["Order", "Position"]}


def toml_key(name: str, sub_uid: int, perms: dict[str, list[str]], extra: str = "") -> str:
    groups = ", ".join(f"{g} = {json.dumps(v)}" for g, v in perms.items())
    return textwrap.dedent(
        f"""
        [[keys]]
        name = "{name}"
        account = "main"
        sub_uid = {sub_uid}
        permissions = {{ {groups} }}
        """
    ) + textwrap.dedent(extra)


DEFAULT_KEYS = toml_key("alpha", 2001, ALPHA_PERMS) + toml_key("beta", 2002, BETA_PERMS)


@dataclass
class Cli:
    """One test's world: a simulator on the wall clock, a Vault prefix, a config, and a runner."""

    sim: Simulator
    bao: BaoServer
    store: VaultStore
    prefix: str
    tmp: Path
    token: str
    outputs: list[str] = field(default_factory=list)

    @property
    def master_path(self) -> str:
        return f"{self.prefix}/accounts/main/master"

    def config(
        self,
        *,
        keys: str = DEFAULT_KEYS,
        policy: str = "",
        vault_address: str | None = None,
        bybit_url: str | None = None,
        prefix: str | None = None,
        account: str = "main",
        max_retries: int = 1,
        name: str = "rotator.toml",
    ) -> Path:
        text = textwrap.dedent(
            f"""
            [bybit]
            base_url = "{bybit_url or self.sim.base_url}"
            max_retries = {max_retries}
            timeout = "5s"

            [vault]
            address = "{vault_address or self.bao.address}"
            mount = "secret"
            prefix = "{prefix or self.prefix}"
            timeout = "5s"
            [vault.auth]
            method = "token"
            token_env = "{TOKEN_ENV}"

            [policy]
            {policy}

            [[accounts]]
            name = "{account}"
            """
        ) + keys.replace('account = "main"', f'account = "{account}"')
        path = self.tmp / name
        path.write_text(text)
        return path

    def run(
        self,
        *args: str,
        config: Path | None = None,
        input: str | None = None,  # noqa: A002 (CliRunner's name)
        token: str | None = None,
    ) -> Result:
        cfg = config or self.tmp / "rotator.toml"
        if not cfg.exists():
            cfg = self.config()
        runner = CliRunner(env={TOKEN_ENV: token or self.token})
        result = runner.invoke(
            cli, [*args, "--config", str(cfg)], input=input, catch_exceptions=False
        )
        # The arguments are input, not output (a test passes a secret as one on purpose).
        self.outputs.append(f"$ rotator {args[0] if args else ''}\n{result.stdout}{result.stderr}")
        return result

    def consumer(self, name: str) -> dict[str, Any]:
        record = self.store.read(f"{self.prefix}/keys/{name}")
        assert record is not None, f"no consumer record for {name}"
        return record.data

    def versions(self) -> dict[str, int]:
        """Current version of every record under the prefix (metadata walk as root)."""
        client = hvac.Client(url=self.bao.address, token=self.bao.root_token)
        out: dict[str, int] = {}

        def walk(path: str) -> None:
            try:
                listed = client.secrets.kv.v2.list_secrets(path=path, mount_point="secret")
            except hvac.exceptions.InvalidPath:
                return
            for child in listed["data"]["keys"]:
                full = f"{path}/{child.rstrip('/')}"
                if child.endswith("/"):
                    walk(full)
                else:
                    meta = client.secrets.kv.v2.read_secret_metadata(
                        path=full, mount_point="secret"
                    )
                    out[full] = int(meta["data"]["current_version"])

        walk(self.prefix)
        return out

    def secrets(self) -> set[str]:
        """Every secret this test could have leaked."""
        found = {MASTER_SECRET, self.token}
        for path in self.versions():
            if "/keys/" not in path and "/state/" not in path:
                continue
            latest = self.store.read(path)
            for version in range(1, (latest.version if latest else 0) + 1):
                record = self.store.read_version(path, version)
                if record is None:
                    continue
                found.update(_secret_values(record.data))
        found.update(SECRET_REGISTRY.witness or ())
        return {s for s in found if s and len(s) >= 8}


def _secret_values(data: Any) -> set[str]:
    if isinstance(data, dict):
        out: set[str] = set()
        for k, v in data.items():
            if isinstance(v, str) and "secret" in k:
                out.add(v)
            else:
                out |= _secret_values(v)
        return out
    if isinstance(data, list):
        return set().union(*(_secret_values(v) for v in data)) if data else set()
    return set()


def assert_no_secret(outputs: list[str], secrets: set[str]) -> None:
    text = "\n".join(outputs)
    leaked = sorted(s[:4] + "…" for s in secrets if s in text)
    assert not leaked, f"secrets (prefixes shown) leaked into CLI output: {leaked}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def restricted_token(bao: BaoServer, policy_text: str) -> str:
    name = unique("cli-policy")
    path = Path(bao.home) / f"{name}.hcl"
    path.write_text(policy_text)
    bao.bao("policy", "write", name, str(path))
    out = bao.bao(
        "token", "create", f"-policy={name}", "-no-default-policy", "-ttl=10m", "-format=json"
    )
    return str(json.loads(out)["auth"]["client_token"])
