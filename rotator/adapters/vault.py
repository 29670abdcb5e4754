"""Vault / OpenBao KV v2 through hvac, with check-and-set writes: `rotator.ports.KeyStore`.

Translation at the boundary (STYLE.md): 429/5xx/unreachable/malformed -> StoreUnavailable
(temporary); 400/401/403 -> StoreDenied (permanent), except a failed check-and-set ->
StoreConflict; 404 on read -> None ("nothing yet"). No hvac or requests exception reaches the core.

Auth: a token (from a file or an env var), AppRole (role_id + secret_id from a file, e.g. a systemd
credential), or JWT (e.g. a Kubernetes service-account token). The client renews its own token at
two thirds of its TTL, logs in again when renewal is impossible, and retries once after a 403 (an
expired token looks like "permission denied").

Where: address, namespace and CA come from `[vault]`, which takes what the file leaves out from
VAULT_ADDR, VAULT_NAMESPACE and VAULT_CACERT / VAULT_CAPATH (`rotator.config.VAULT_ENVIRONMENT`;
the file wins). hvac itself adds VAULT_CLIENT_CERT / VAULT_CLIENT_KEY; VAULT_SKIP_VERIFY is never
read: TLS is always verified.

Concurrency: each thread has its own hvac client (its own requests session and connection pool);
the token is shared. Only login/renewal is serialized; accounts reconciled on different threads
do not wait for each other's Vault calls.

Proxies: requests looks up proxy and netrc settings in the environment on every call (measured
0.13 ms of a 0.95 ms loopback read, ~14 %). When no proxy variable is set at start-up (nor
REQUESTS_CA_BUNDLE for an https address without `ca_cert`) the sessions skip that lookup
(`trust_env = False`); otherwise requests' usual behaviour is kept, so a deployment behind an HTTPS
proxy works unchanged.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import hvac
import hvac.exceptions
import requests
import structlog

from rotator.errors import StoreConflict, StoreDenied, StoreUnavailable
from rotator.model import Secret
from rotator.ports import Versioned

if TYPE_CHECKING:
    from rotator.clock import Clock
    from rotator.config import VaultConfig

log = structlog.get_logger(__name__)

T = TypeVar("T")

_CAS_MISMATCH = "check-and-set parameter did not match"
CAPABILITIES_CHUNK = 200
"""Paths per sys/capabilities-self request: OpenBao refuses more than 999 strings in one."""
_PROXY_SETTINGS = ("http_proxy", "https_proxy", "all_proxy")
_CA_SETTINGS = ("requests_ca_bundle", "curl_ca_bundle")


def relies_on_environment(env: Mapping[str, str], *, address: str, ca_cert: Path | None) -> bool:
    """True when requests would take a proxy, or (https with no `ca_cert`) a CA bundle, from
    the environment for calls to `address`."""
    names = {name.lower() for name, value in env.items() if value}
    if names & set(_PROXY_SETTINGS):
        return True
    return address.startswith("https:") and ca_cert is None and bool(names & set(_CA_SETTINGS))


@dataclass(frozen=True, slots=True, kw_only=True)
class VaultAuth:
    """How to obtain a token. Secrets come from files/env at login time, never from config."""

    method: str = "token"  # token | approle | jwt
    token: Secret | None = None
    token_file: Path | None = None
    role_id: str | None = None
    secret_id: Secret | None = None
    secret_id_file: Path | None = None
    role: str | None = None
    jwt_file: Path | None = None
    mount_point: str | None = None

    @classmethod
    def from_config(cls, cfg: VaultConfig, env: Mapping[str, str] | None = None) -> VaultAuth:
        env = os.environ if env is None else env
        a = cfg.auth
        token = None
        if a.method == "token" and a.token_file is None:
            value = env.get(a.token_env or "VAULT_TOKEN")
            token = Secret(value) if value else None
        secret_id = None
        if a.method == "approle" and a.secret_id_file is None and a.secret_id_env:
            value = env.get(a.secret_id_env)
            secret_id = Secret(value) if value else None
        role_id = a.role_id
        if a.role_id_file is not None:
            role_id = _read_file(a.role_id_file, "role_id_file").reveal()
        return cls(
            method=a.method,
            token=token,
            token_file=a.token_file,
            role_id=role_id,
            secret_id=secret_id,
            secret_id_file=a.secret_id_file,
            role=a.role,
            jwt_file=a.jwt_file,
            mount_point=a.mount_point,
        )


def _read_file(path: Path, what: str) -> Secret:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StoreDenied(
            f"cannot read the Vault {what} {path}: {exc.strerror or exc}; check the path and that "
            "the service user may read it"
        ) from None
    if not value:
        raise StoreDenied(f"the Vault {what} {path} is empty")
    return Secret(value)


class VaultStore:
    """KV v2 on one mount. Thread-safe: one hvac client per thread, one shared token."""

    def __init__(
        self,
        *,
        address: str,
        mount: str,
        auth: VaultAuth,
        clock: Clock,
        namespace: str | None = None,
        ca_cert: Path | None = None,
        timeout_s: float = 10.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.mount = mount
        self._auth = auth
        self._clock = clock
        self._on_error = on_error
        self._lock = threading.RLock()
        verify: bool | str = str(ca_cert) if ca_cert else True
        self._client_args: dict[str, Any] = {
            "url": address,
            "namespace": namespace,
            "verify": verify,
            "timeout": timeout_s,
        }
        self.trust_env = relies_on_environment(os.environ, address=address, ca_cert=ca_cert)
        self._local = threading.local()
        self._token: str | None = None
        self._token_renew_at: datetime | None = None
        self._logged_in = False

    @classmethod
    def from_config(
        cls, cfg: VaultConfig, *, clock: Clock, on_error: Callable[[str], None] | None = None
    ) -> VaultStore:
        return cls(
            address=cfg.address,
            mount=cfg.mount,
            auth=VaultAuth.from_config(cfg),
            clock=clock,
            namespace=cfg.namespace,
            ca_cert=cfg.ca_cert,
            timeout_s=cfg.timeout.total_seconds(),
            on_error=on_error,
        )

    @property
    def _client(self) -> hvac.Client:
        """This thread's client, carrying the current token."""
        client: hvac.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = hvac.Client(**self._client_args)
            client.session.trust_env = self.trust_env
            self._local.client = client
        if self._token is not None and client.token != self._token:
            client.token = self._token
        return client

    # ------------------------------------------------------------------ auth
    def login(self) -> None:
        """Obtain a token by the configured method. Raises StoreDenied / StoreUnavailable."""
        with self._lock, self._translated("login"):
            a = self._auth
            if a.method == "token":
                token = a.token or (
                    _read_file(a.token_file, "token_file") if a.token_file else None
                )
                if token is None:
                    raise StoreDenied(
                        "no Vault token: set VAULT_TOKEN (or [vault.auth] token_env) or token_file"
                    )
                self._token = token.reveal()
                info = self._client.auth.token.lookup_self()["data"]
            elif a.method == "approle":
                secret_id = a.secret_id or (
                    _read_file(a.secret_id_file, "secret_id_file") if a.secret_id_file else None
                )
                if secret_id is None or not a.role_id:
                    raise StoreDenied("AppRole login needs role_id and a secret_id file or env var")
                client = self._client
                resp = client.auth.approle.login(
                    role_id=a.role_id,
                    secret_id=secret_id.reveal(),
                    mount_point=a.mount_point or "approle",
                )
                self._token = client.token
                info = {
                    "ttl": resp["auth"]["lease_duration"],
                    "renewable": resp["auth"]["renewable"],
                }
            elif a.method == "jwt":
                if a.jwt_file is None or not a.role:
                    raise StoreDenied("JWT login needs role and jwt_file")
                jwt = _read_file(a.jwt_file, "jwt_file")
                client = self._client
                resp = client.auth.jwt.jwt_login(
                    role=a.role, jwt=jwt.reveal(), path=a.mount_point or "jwt"
                )
                self._token = client.token
                info = {
                    "ttl": resp["auth"]["lease_duration"],
                    "renewable": resp["auth"]["renewable"],
                }
            else:  # config validation makes this unreachable; keep a clear message anyway
                raise StoreDenied(f"unknown Vault auth method {a.method!r}")
            self._logged_in = True
            self._schedule_renewal(int(info.get("ttl") or 0))
            log.info("vault.login.succeeded", method=a.method, ttl_s=int(info.get("ttl") or 0))

    def _schedule_renewal(self, ttl_s: int) -> None:
        # ttl 0 = a root or non-expiring token: never renew.
        self._token_renew_at = (
            self._clock.now() + timedelta(seconds=ttl_s * 2 / 3) if ttl_s > 0 else None
        )

    def _ensure_token(self) -> None:
        if not self._logged_in:
            self.login()
            return
        if self._token_renew_at is None or self._clock.now() < self._token_renew_at:
            return
        try:
            with self._translated("renew"):
                resp = self._client.auth.token.renew_self()
            self._schedule_renewal(int(resp["auth"]["lease_duration"]))
            log.info("vault.token.renewed")
        except (StoreDenied, StoreUnavailable, KeyError, TypeError):
            log.info("vault.token.renew_failed", action="logging in again")
            self.login()

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        """Run one hvac call: ensure a token, translate errors, re-login once on 403.

        Only the token bookkeeping holds the lock; the call itself runs on this thread's client.
        """
        with self._lock:
            self._ensure_token()
        try:
            with self._translated(operation):
                return fn()
        except StoreDenied:
            if self._auth.method == "token" and self._auth.token_file is None:
                raise
            with self._lock:
                self.login()  # an expired token reads as "permission denied"
            with self._translated(operation):
                return fn()

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (StoreConflict, StoreDenied, StoreUnavailable) as exc:
            self._count(operation, exc)
            raise
        except hvac.exceptions.InvalidRequest as exc:
            if _CAS_MISMATCH in str(exc):
                raise StoreConflict(
                    f"Vault {operation}: another writer changed the record"
                ) from None
            self._count(operation, exc)
            raise StoreDenied(f"Vault {operation} refused: {_errors(exc)}") from None
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
            self._count(operation, exc)
            raise StoreDenied(
                f"Vault {operation} denied: {_errors(exc)}; check the token's policy "
                "(deploy/vault/rotator.hcl) and the KV mount"
            ) from None
        except (
            hvac.exceptions.VaultDown,
            hvac.exceptions.InternalServerError,
            hvac.exceptions.BadGateway,
            hvac.exceptions.RateLimitExceeded,
            hvac.exceptions.VaultNotInitialized,
            hvac.exceptions.UnexpectedError,
            hvac.exceptions.PreconditionFailed,
        ) as exc:
            self._count(operation, exc)
            raise StoreUnavailable(f"Vault {operation} failed: {_errors(exc)}") from None
        except requests.RequestException as exc:
            self._count(operation, exc)
            raise StoreUnavailable(
                f"Vault {operation}: cannot reach {self.address} ({exc.__class__.__name__})"
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            self._count(operation, exc)
            raise StoreUnavailable(
                f"Vault {operation}: malformed reply ({exc.__class__.__name__})"
            ) from None

    def _count(self, operation: str, exc: BaseException) -> None:
        log.warning("vault.operation.failed", operation=operation, error=exc.__class__.__name__)
        if self._on_error is not None:
            self._on_error(operation)

    # ------------------------------------------------------------------ KeyStore
    def read(self, path: str) -> Versioned | None:
        return self._read(path, None)

    def read_version(self, path: str, version: int) -> Versioned | None:
        return self._read(path, version)

    def _read(self, path: str, version: int | None) -> Versioned | None:
        def op() -> Versioned | None:
            try:
                resp = self._client.secrets.kv.v2.read_secret_version(
                    path=path,
                    version=version,
                    mount_point=self.mount,
                    raise_on_deleted_version=False,
                )
            except hvac.exceptions.InvalidPath:
                return None
            body = resp["data"]
            data = body.get("data")
            meta = body["metadata"]
            if data is None or meta.get("destroyed") or meta.get("deletion_time"):
                return None
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
            return Versioned(data=data, version=int(meta["version"]))

        return self._call("read", op)

    def write(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        def op() -> int:
            resp = self._client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=self.mount
            )
            return int(resp["data"]["version"])

        return self._call("write", op)

    def destroy_versions(self, path: str, versions: list[int]) -> None:
        if not versions:
            return

        def op() -> None:
            self._client.secrets.kv.v2.destroy_secret_versions(
                path=path, versions=versions, mount_point=self.mount
            )

        self._call("destroy", op)

    def list_children(self, path: str) -> tuple[str, ...]:
        def op() -> tuple[str, ...]:
            try:
                resp = self._client.secrets.kv.v2.list_secrets(path=path, mount_point=self.mount)
            except hvac.exceptions.InvalidPath:
                return ()
            return tuple(str(k) for k in resp["data"]["keys"])

        return self._call("list", op)

    def ping(self) -> None:
        def op() -> None:
            status = self._client.sys.read_health_status(method="GET")
            body = status.json() if hasattr(status, "json") else status
            if body.get("sealed"):
                raise StoreUnavailable(f"Vault at {self.address} is sealed; unseal it")
            self._client.auth.token.lookup_self()

        self._call("ping", op)

    def capabilities(self, paths: list[str]) -> dict[str, list[str]]:
        """The token's capabilities on each full API path (e.g. `secret/data/rotator/keys/a`),
        asked in requests of at most `CAPABILITIES_CHUNK` paths."""

        def ask(chunk: list[str]) -> Callable[[], dict[str, list[str]]]:
            def op() -> dict[str, list[str]]:
                resp = self._client.sys.get_capabilities(paths=chunk)
                caps = resp.get("data", resp)
                return {p: list(caps.get(p, [])) for p in chunk}

            return op

        out: dict[str, list[str]] = {}
        for start in range(0, len(paths), CAPABILITIES_CHUNK):
            out.update(self._call("capabilities", ask(paths[start : start + CAPABILITIES_CHUNK])))
        return out

    def data_path(self, path: str) -> str:
        """The full API path of a KV v2 data path, as policies name it."""
        return f"{self.mount}/data/{path}"

    def metadata_path(self, path: str) -> str:
        return f"{self.mount}/metadata/{path}"

    def destroy_path(self, path: str) -> str:
        return f"{self.mount}/destroy/{path}"


def _errors(exc: Exception) -> str:
    errors: object = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)[:300]
    return exc.__class__.__name__
