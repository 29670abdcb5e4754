"""A trading bot that follows its key without a restart, and acknowledges it (pybit + hvac).

Run beside `rotator run` with a key configured as `[keys.ack] mode = "vault"`:

    VAULT_ADDR=https://vault:8200 VAULT_TOKEN=... python bot_pybit.py bot1

Every minute the bot reads its consumer record from Vault (`secret/rotator/keys/<name>`). When the
key id changes, it builds a new pybit session, proves the key works (query-api), switches its
trading over to it, and writes the new key id to `secret/rotator/ack/<name>`: the rotator then
revokes the old key (it waits for this, at most `max_wait`). The bot's Vault policy may read its
consumer record and write only its ack record (deploy/vault/bot-ack.hcl).

A bot that reads an env file written by a file hook does the same with `EnvFileSource` below.
A bot that is only restarted (a command hook `systemctl restart mybot`) needs no code: use
`mode = "hook"`, and the hook's success is the acknowledgement.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import hvac
from pybit.unified_trading import HTTP


@dataclass(frozen=True)
class Key:
    api_key: str
    api_secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"Key(api_key={self.api_key[:4]}…)"


class KeySource(Protocol):
    def current(self) -> Key: ...


class VaultSource:
    """The consumer record the rotator writes (KV v2)."""

    def __init__(
        self, client: hvac.Client, name: str, mount: str = "secret", prefix: str = "rotator"
    ) -> None:
        self.client, self.mount = client, mount
        self.path = f"{prefix}/keys/{name}"

    def current(self) -> Key:
        data = self.client.secrets.kv.v2.read_secret_version(
            path=self.path, mount_point=self.mount, raise_on_deleted_version=True
        )["data"]["data"]
        return Key(api_key=data["api_key"], api_secret=data["api_secret"])


class EnvFileSource:
    """The env file a `type = "file"` hook writes (BYBIT_API_KEY=..., BYBIT_API_SECRET=...)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def current(self) -> Key:
        values = dict(
            line.split("=", 1) for line in self.path.read_text().splitlines() if "=" in line
        )
        return Key(
            api_key=values["BYBIT_API_KEY"].strip().strip('"'),
            api_secret=values["BYBIT_API_SECRET"].strip().strip('"'),
        )


class Bot:
    """Holds one pybit session; `poll()` switches to a new key and acknowledges it."""

    def __init__(
        self,
        source: KeySource,
        vault: hvac.Client,
        name: str,
        *,
        endpoint: str | None = None,
        mount: str = "secret",
        prefix: str = "rotator",
    ) -> None:
        self.source, self.vault, self.mount = source, vault, mount
        self.ack_path = f"{prefix}/ack/{name}"
        self.endpoint = endpoint
        self.key: Key | None = None
        self.session: HTTP | None = None

    def _session(self, key: Key) -> HTTP:
        session = HTTP(api_key=key.api_key, api_secret=key.api_secret, max_retries=1)
        if self.endpoint:  # a simulator or another host (pybit has no base-URL parameter)
            session.endpoint = self.endpoint
        return session

    def poll(self) -> bool:
        """Read the key; on a new one, prove it, switch, acknowledge. True if it switched."""
        key = self.source.current()
        if self.key is not None and key.api_key == self.key.api_key:
            return False
        session = self._session(key)
        info = session.get_api_key_information()["result"]  # raises if the key does not work
        if info["apiKey"] != key.api_key:
            raise RuntimeError("Bybit describes another key")
        self.key, self.session = key, session  # from here on, orders go through the new key
        self.vault.secrets.kv.v2.create_or_update_secret(
            path=self.ack_path, secret={"api_key": key.api_key}, mount_point=self.mount
        )
        return True


def main() -> None:
    name = sys.argv[1]
    vault = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    bot = Bot(VaultSource(vault, name), vault, name, endpoint=os.environ.get("BYBIT_ENDPOINT"))
    while True:
        if bot.poll():
            print(f"now trading with {bot.key!r}", flush=True)
        time.sleep(60)


if __name__ == "__main__":
    main()
