"""The Vault adapter against a real OpenBao dev server."""

from __future__ import annotations

import base64
import http.server
import json
import textwrap
import threading
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from rotator.adapters.vault import VaultAuth, VaultStore
from rotator.clock import ManualClock, SystemClock
from rotator.errors import StoreConflict, StoreDenied, StoreUnavailable
from rotator.model import Secret

from fixtures.vault import BaoServer, free_port


def test_read_absent_path_is_none(vault_store: VaultStore, vault_prefix: str):
    """A path never written reads as None, not an error."""
    assert vault_store.read(f"{vault_prefix}/nothing") is None


def test_write_then_read_roundtrip(vault_store: VaultStore, vault_prefix: str):
    """Data written with cas=0 comes back with version 1; the next write needs cas=1."""
    path = f"{vault_prefix}/a"
    assert vault_store.write(path, {"x": "1", "n": {"deep": [1, 2]}}, cas=0) == 1
    got = vault_store.read(path)
    assert got is not None
    assert got.version == 1
    assert got.data == {"x": "1", "n": {"deep": [1, 2]}}
    assert vault_store.write(path, {"x": "2"}, cas=1) == 2
    assert vault_store.read(path).data == {"x": "2"}  # type: ignore[union-attr]
    assert vault_store.read_version(path, 1).data == {"x": "1", "n": {"deep": [1, 2]}}  # type: ignore[union-attr]


def test_cas_zero_refuses_existing(vault_store: VaultStore, vault_prefix: str):
    """cas=0 creates only if absent: a second creator loses with StoreConflict."""
    path = f"{vault_prefix}/b"
    vault_store.write(path, {"v": 1}, cas=0)
    with pytest.raises(StoreConflict):
        vault_store.write(path, {"v": 2}, cas=0)
    assert vault_store.read(path).data == {"v": 1}  # type: ignore[union-attr]


def test_stale_cas_is_conflict(vault_store: VaultStore, vault_prefix: str):
    """Two writers from the same version: the second one gets StoreConflict, nothing is lost."""
    path = f"{vault_prefix}/c"
    vault_store.write(path, {"v": 1}, cas=0)
    vault_store.write(path, {"v": 2}, cas=1)
    with pytest.raises(StoreConflict):
        vault_store.write(path, {"v": 3}, cas=1)
    assert vault_store.read(path).data == {"v": 2}  # type: ignore[union-attr]


def test_destroy_versions_removes_data(vault_store: VaultStore, vault_prefix: str):
    """Destroyed versions read as None; the latest stays."""
    path = f"{vault_prefix}/d"
    vault_store.write(path, {"secret": "one-one-one"}, cas=0)
    vault_store.write(path, {"secret": "two"}, cas=1)
    vault_store.destroy_versions(path, [1])
    assert vault_store.read_version(path, 1) is None
    assert vault_store.read(path).data == {"secret": "two"}  # type: ignore[union-attr]


def test_list_children(vault_store: VaultStore, vault_prefix: str):
    """Listing a folder gives leaf names and sub-folders with a trailing slash."""
    vault_store.write(f"{vault_prefix}/keys/a", {"v": 1}, cas=0)
    vault_store.write(f"{vault_prefix}/keys/b", {"v": 1}, cas=0)
    vault_store.write(f"{vault_prefix}/keys/sub/c", {"v": 1}, cas=0)
    assert sorted(vault_store.list_children(f"{vault_prefix}/keys")) == ["a", "b", "sub/"]
    assert vault_store.list_children(f"{vault_prefix}/none") == ()


def test_ping_ok(vault_store: VaultStore):
    """A reachable, unsealed server with a valid token passes the probe."""
    vault_store.ping()


def test_bad_token_is_denied(bao: BaoServer, vault_prefix: str):
    """A wrong token is a permanent error that says what to check."""
    store = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="token", token=Secret("not-a-real-token-value")),
        clock=SystemClock(),
    )
    with pytest.raises(StoreDenied, match=r"policy|denied|token"):
        store.read(f"{vault_prefix}/x")


def test_unreachable_is_temporary():
    """Nothing listening is StoreUnavailable (temporary), naming the address."""
    port = free_port()
    store = VaultStore(
        address=f"http://127.0.0.1:{port}",
        mount="secret",
        auth=VaultAuth(method="token", token=Secret("whatever-token")),
        clock=SystemClock(),
        timeout_s=2,
    )
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        store.read("x")


def test_errors_are_counted(bao: BaoServer):
    """Every failed operation is reported to the on_error hook (the metrics counter)."""
    seen: list[str] = []
    store = VaultStore(
        address=f"http://127.0.0.1:{free_port()}",
        mount="secret",
        auth=VaultAuth(method="token", token=Secret("whatever-token")),
        clock=SystemClock(),
        timeout_s=2,
        on_error=seen.append,
    )
    with pytest.raises(StoreUnavailable):
        store.read("x")
    assert seen == ["login"]


def _make_approle(bao: BaoServer, prefix: str, policy_hcl: str) -> tuple[str, str]:
    name = f"r{prefix[-8:]}"
    bao.bao("policy", "write", name, "-", stdin=policy_hcl)
    try:
        bao.bao("auth", "enable", "approle")
    except RuntimeError as exc:
        if "already in use" not in str(exc):
            raise
    bao.bao("write", f"auth/approle/role/{name}", f"token_policies={name}", "token_ttl=1h")
    role_id = json.loads(bao.bao("read", "-format=json", f"auth/approle/role/{name}/role-id"))
    secret_id = json.loads(
        bao.bao("write", "-format=json", "-f", f"auth/approle/role/{name}/secret-id")
    )
    return role_id["data"]["role_id"], secret_id["data"]["secret_id"]


def test_approle_login_and_policy_boundary(bao: BaoServer, vault_prefix: str, tmp_path):
    """AppRole login works from a secret-id file; the policy allows its prefix and nothing else."""
    policy = textwrap.dedent(f"""
        path "secret/data/{vault_prefix}/*" {{ capabilities = ["create", "read", "update"] }}
        path "secret/metadata/{vault_prefix}/*" {{ capabilities = ["list", "read"] }}
    """)
    role_id, secret_id = _make_approle(bao, vault_prefix, policy)
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id + "\n")
    secret_file.chmod(0o600)
    store = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="approle", role_id=role_id, secret_id_file=secret_file),
        clock=SystemClock(),
    )
    store.write(f"{vault_prefix}/k", {"v": 1}, cas=0)
    assert store.read(f"{vault_prefix}/k").data == {"v": 1}  # type: ignore[union-attr]
    with pytest.raises(StoreDenied):
        store.read("elsewhere/k")
    with pytest.raises(StoreDenied):
        store.write("elsewhere/k", {"v": 1}, cas=0)


def test_approle_token_renewal_on_virtual_clock(bao: BaoServer, vault_prefix: str, tmp_path):
    """Past two thirds of the token TTL the adapter renews its token (no real waiting)."""
    policy = f'path "secret/data/{vault_prefix}/*" {{ capabilities = ["create", "read"] }}'
    role_id, secret_id = _make_approle(bao, vault_prefix, policy)
    clock = ManualClock(SystemClock().now())
    store = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="approle", role_id=role_id, secret_id=Secret(secret_id)),
        clock=clock,
    )
    store.write(f"{vault_prefix}/r", {"v": 1}, cas=0)
    first = store._token_renew_at
    assert first is not None

    clock.advance(timedelta(minutes=50))  # token_ttl=1h: renew at 40 min
    assert store.read(f"{vault_prefix}/r") is not None
    assert store._token_renew_at is not None
    assert store._token_renew_at > first


def test_missing_secret_id_file_names_it(bao: BaoServer, tmp_path):
    """A missing credential file is a permanent error naming the file."""
    missing = tmp_path / "nope"
    store = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="approle", role_id="x", secret_id_file=missing),
        clock=SystemClock(),
    )
    with pytest.raises(StoreDenied, match=str(missing)):
        store.read("x")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _service_account_jwt(private_key, *, subject: str, audience: str) -> str:
    """A token shaped like a Kubernetes service-account token, signed RS256."""
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": subject,
        "aud": [audience],
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
    }
    payload = _b64url(json.dumps(claims).encode())
    signature = private_key.sign(
        f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{header}.{payload}.{_b64url(signature)}"


def test_jwt_login_like_kubernetes(bao: BaoServer, vault_prefix: str, tmp_path):
    """JWT auth (the Kubernetes service-account path) logs in from a token file and is bound by
    its role's policy."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    mount = f"jwt-{vault_prefix[-6:]}"
    bao.bao("auth", "enable", f"-path={mount}", "jwt")
    bao.bao("write", f"auth/{mount}/config", f"jwt_validation_pubkeys={public_pem}")
    policy = f'path "secret/data/{vault_prefix}/*" {{ capabilities = ["create", "read"] }}'
    bao.bao("policy", "write", mount, "-", stdin=policy)
    bao.bao(
        "write",
        f"auth/{mount}/role/rotator",
        "role_type=jwt",
        "user_claim=sub",
        "bound_audiences=vault",
        "bound_subject=system:serviceaccount:rotator:rotator",
        f"token_policies={mount}",
        "token_ttl=1h",
    )
    token_file = tmp_path / "token"
    token_file.write_text(
        _service_account_jwt(key, subject="system:serviceaccount:rotator:rotator", audience="vault")
    )
    store = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="jwt", role="rotator", jwt_file=token_file, mount_point=mount),
        clock=SystemClock(),
    )
    store.write(f"{vault_prefix}/k8s", {"v": 1}, cas=0)
    assert store.read(f"{vault_prefix}/k8s").data == {"v": 1}  # type: ignore[union-attr]
    with pytest.raises(StoreDenied):
        store.read("elsewhere/k")
    # a token for another service account is refused
    token_file.write_text(
        _service_account_jwt(key, subject="system:serviceaccount:x:y", audience="vault")
    )
    other = VaultStore(
        address=bao.address,
        mount="secret",
        auth=VaultAuth(method="jwt", role="rotator", jwt_file=token_file, mount_point=mount),
        clock=SystemClock(),
    )
    with pytest.raises(StoreDenied):
        other.read(f"{vault_prefix}/k8s")


def test_capabilities_of_thousands_of_paths(vault_store: VaultStore, vault_prefix: str):
    """10,000 keys need ~50,000 paths checked; OpenBao refuses more than 999 in one request, so
    the store asks in chunks and every path gets its answer."""
    paths = [f"secret/data/{vault_prefix}/keys/k{i}" for i in range(1500)]
    caps = vault_store.capabilities(paths)
    assert len(caps) == 1500
    assert all(caps[p] == ["root"] for p in paths)


def test_proxy_environment_decides_trust_env(bao: BaoServer, monkeypatch: pytest.MonkeyPatch):
    """Without proxy or CA-bundle variables the sessions skip requests' per-call environment
    lookups; with one set, requests' usual behaviour (honour the proxy) is kept."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    auth = VaultAuth(method="token", token=Secret(bao.root_token))
    plain = VaultStore(address=bao.address, mount="secret", auth=auth, clock=SystemClock())
    plain.ping()
    assert plain._client.session.trust_env is False
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    proxied = VaultStore(address=bao.address, mount="secret", auth=auth, clock=SystemClock())
    assert proxied._client.session.trust_env is True


class _HeldVault(http.server.BaseHTTPRequestHandler):
    """A loopback stand-in for Vault whose reads of paths containing "held" wait for `release`."""

    release = threading.Event()

    def do_GET(self) -> None:
        if "held" in self.path:
            self.release.wait(10)
        if "lookup-self" in self.path:
            body: dict[str, object] = {"data": {"ttl": 0}}
        else:
            body = {"data": {"data": {"x": "1"}, "metadata": {"version": 1}}}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: object) -> None:
        pass


def test_a_slow_call_does_not_hold_up_other_threads():
    """Accounts reconcile on their own threads: one account's Vault call waiting on the network
    must not serialize the others (one client per thread, no lock around the call)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeldVault)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _HeldVault.release.clear()
    try:
        store = VaultStore(
            address=f"http://127.0.0.1:{server.server_address[1]}",
            mount="secret",
            auth=VaultAuth(method="token", token=Secret("t")),
            clock=SystemClock(),
        )
        store.login()
        held = threading.Thread(target=store.read, args=("held/a",), daemon=True)
        held.start()
        time.sleep(0.2)  # let it reach the server (the assertion below does not depend on it)
        done: list[object] = []
        other = threading.Thread(target=lambda: done.append(store.read("other/b")), daemon=True)
        other.start()
        other.join(timeout=5)
        assert done, "a read on another thread waited for the held one"
        assert held.is_alive()
    finally:
        _HeldVault.release.set()
        server.shutdown()
        server.server_close()
