"""deploy/vault/rotator.hcl against a real OpenBao: what the daemon may do, and may not.

Also runs the AppRole commands of docs/install-vps.md (on a private auth mount, so that other
tests sharing the session's server are not disturbed).
"""

from __future__ import annotations

import json
import uuid

import hvac
import hvac.exceptions
import pytest
from deploy_tools import DEPLOY

POLICY = DEPLOY / "vault" / "rotator.hcl"
WRITE = {"create", "read", "update"}


@pytest.fixture(name="policy_token", scope="module")
def _policy_token(bao):
    """A token holding ONLY the shipped policy (no default policy)."""
    name = f"rotator-{uuid.uuid4().hex[:8]}"
    bao.bao("policy", "write", name, str(POLICY))
    out = bao.bao(
        "token", "create", f"-policy={name}", "-no-default-policy", "-ttl=10m", "-format=json"
    )
    return json.loads(out)["auth"]["client_token"]


def capabilities(bao, token: str, path: str) -> set[str]:
    client = hvac.Client(url=bao.address, token=bao.root_token)
    answer = client.sys.get_capabilities(paths=[path], token=token)
    return set(answer[path] if path in answer else answer["capabilities"])


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("secret/data/rotator/keys/bot1", WRITE),
        ("secret/data/rotator/state/bot1", WRITE),
        ("secret/data/rotator/accounts/main/state", WRITE),
        ("secret/metadata/rotator/keys/bot1", WRITE | {"list"}),
        ("secret/metadata/rotator/", WRITE | {"list"}),
        ("secret/destroy/rotator/keys/bot1", {"update"}),
        ("secret/data/rotator/accounts/main/master", {"read"}),
        ("secret/metadata/rotator/accounts/main/master", {"read"}),
        ("secret/destroy/rotator/accounts/main/master", {"deny"}),
        ("secret/data/other-app/db", {"deny"}),
        ("secret/data/rotator", {"deny"}),
        ("sys/mounts", {"deny"}),
        ("auth/token/create", {"deny"}),
        ("auth/token/renew-self", {"update"}),
        ("auth/token/lookup-self", {"read"}),
        ("sys/capabilities-self", {"update"}),
    ],
)
def test_policy_grants_exactly(bao, policy_token, path, expected):
    assert capabilities(bao, policy_token, path) == expected


def test_policy_in_practice(bao, policy_token):
    """Real requests: write a consumer key with check-and-set, read a master key, not write it."""
    root = hvac.Client(url=bao.address, token=bao.root_token)
    account = f"acct-{uuid.uuid4().hex[:8]}"
    master = f"rotator/accounts/{account}/master"
    root.secrets.kv.v2.create_or_update_secret(
        path=master, secret={"api_key": "MASTER-PLACEHOLDER", "api_secret": "not-a-secret"}
    )
    daemon = hvac.Client(url=bao.address, token=policy_token)
    key = f"rotator/keys/k-{uuid.uuid4().hex[:8]}"
    daemon.secrets.kv.v2.create_or_update_secret(path=key, secret={"api_key": "A"}, cas=0)
    daemon.secrets.kv.v2.create_or_update_secret(path=key, secret={"api_key": "B"}, cas=1)
    assert daemon.secrets.kv.v2.read_secret_version(path=key, raise_on_deleted_version=True)[
        "data"
    ]["data"] == {"api_key": "B"}
    daemon.secrets.kv.v2.destroy_secret_versions(path=key, versions=[1])
    read = daemon.secrets.kv.v2.read_secret_version(path=master, raise_on_deleted_version=True)
    assert read["data"]["data"]["api_key"] == "MASTER-PLACEHOLDER"
    with pytest.raises(hvac.exceptions.Forbidden):
        daemon.secrets.kv.v2.create_or_update_secret(path=master, secret={"api_key": "evil"})
    with pytest.raises(hvac.exceptions.Forbidden):
        daemon.secrets.kv.v2.destroy_secret_versions(path=master, versions=[1])
    with pytest.raises(hvac.exceptions.Forbidden):
        daemon.secrets.kv.v2.delete_metadata_and_all_versions(path=key)


def test_install_guide_approle_flow(bao):
    """The AppRole steps of docs/install-vps.md: role-id + secret-id log in with the policy."""
    mount = f"approle-{uuid.uuid4().hex[:8]}"
    policy = f"rotator-{uuid.uuid4().hex[:8]}"
    bao.bao("policy", "write", policy, str(POLICY))
    bao.bao("auth", "enable", f"-path={mount}", "approle")
    role = f"auth/{mount}/role/rotator"

    def create_role() -> None:
        bao.bao(
            "write",
            role,
            f"token_policies={policy}",
            "token_ttl=1h",
            "token_max_ttl=4h",
            "secret_id_ttl=90d",
            "secret_id_num_uses=0",
            "secret_id_bound_cidrs=127.0.0.1/32",
            "token_bound_cidrs=127.0.0.1/32",
        )

    def new_secret_id() -> dict:
        return json.loads(bao.bao("write", "-format=json", "-f", f"{role}/secret-id"))["data"]

    create_role()
    # The mount's max_lease_ttl (32 days by default) silently caps the 90-day secret-id TTL ...
    assert new_secret_id()["secret_id_ttl"] <= 32 * 86400
    # ... unless the mount is tuned, as the guide does (before creating the role).
    bao.bao("auth", "tune", "-max-lease-ttl=2160h", f"{mount}/")
    create_role()
    generated = new_secret_id()
    assert generated["secret_id_ttl"] == 90 * 86400
    role_id = bao.bao("read", "-field=role_id", f"{role}/role-id").strip()
    client = hvac.Client(url=bao.address)
    login = client.auth.approle.login(
        role_id=role_id, secret_id=generated["secret_id"], mount_point=mount
    )
    assert policy in login["auth"]["policies"]
    bao.bao("auth", "disable", mount)


def test_install_guide_master_key_from_stdin(bao):
    """`bao kv put ... api_secret=-` reads the secret from stdin, never from argv."""
    path = f"secret/rotator/accounts/a-{uuid.uuid4().hex[:8]}/master"
    bao.bao("kv", "put", path, "api_key=KEY-PLACEHOLDER", "api_secret=-", stdin="from-stdin")
    stored = json.loads(bao.bao("kv", "get", "-format=json", path))["data"]["data"]
    assert stored == {"api_key": "KEY-PLACEHOLDER", "api_secret": "from-stdin"}


def test_bot_ack_policy_grants_only_its_own_records(bao, tmp_path):
    """deploy/vault/bot-ack.hcl: a bot reads its consumer record and writes only its ack."""
    name = f"bot-{uuid.uuid4().hex[:8]}"
    text = (DEPLOY / "vault" / "bot-ack.hcl").read_text().replace("BOTNAME", "bot1")
    path = tmp_path / f"{name}.hcl"
    path.write_text(text)
    bao.bao("policy", "write", name, str(path))
    token = json.loads(
        bao.bao("token", "create", f"-policy={name}", "-no-default-policy", "-format=json")
    )["auth"]["client_token"]
    assert capabilities(bao, token, "secret/data/rotator/keys/bot1") == {"read"}
    assert capabilities(bao, token, "secret/data/rotator/ack/bot1") == {"create", "update"}
    for other in (
        "secret/data/rotator/keys/bot2",
        "secret/data/rotator/ack/bot2",
        "secret/data/rotator/state/bot1",
        "secret/data/rotator/leases/main",
    ):
        assert capabilities(bao, token, other) == {"deny"}, other
