"""The client against the project's Bybit simulator over real loopback HTTP, on a virtual clock.

Each test gets its own simulator on 127.0.0.1 and a ManualClock that the client's `sleep`
advances: rate limits and backoff are exercised without a single real sleep.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest
from bybit_support import VirtualTime
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rotator.adapters.bybit import BybitClient, RateLimiter
from rotator.errors import (
    ExchangeAuthFailed,
    ExchangeOutcomeUnknown,
    ExchangePermissionDenied,
    ExchangeRateLimited,
    ExchangeRejected,
    KeyLimitReached,
)
from rotator.model import Credentials, KeyKind, KeySpec, Secret, normalize_permissions
from rotator.simulator import Simulator, SimulatorOptions

import fixtures.simulator as shared

MASTER_UID = 1000
MASTER_KEY = "MASTERKEY0000000001"
MASTER_SECRET = "MASTERSECRET00000000000000000000001"
SUB_UIDS = (2001, 2002)
PERMS = normalize_permissions({"Spot": ["SpotTrade"], "ContractTrade": ["Order", "Position"]})
SPEC = KeySpec(sub_uid=2001, read_only=False, permissions=PERMS)
CREATE = "/v5/user/create-sub-api"


def master() -> Credentials:
    return Credentials(api_key=MASTER_KEY, secret=Secret(MASTER_SECRET))


class Env:
    """A simulator served on loopback plus a client wired to the same virtual clock."""

    def __init__(self, options: SimulatorOptions | None = None, **client_kwargs) -> None:
        self.vt = VirtualTime()
        self.sim = Simulator(clock=self.vt.clock, options=options or SimulatorOptions(), seed=0)
        self.sim.add_account(
            uid=MASTER_UID, api_key=MASTER_KEY, api_secret=MASTER_SECRET, sub_uids=list(SUB_UIDS)
        )
        self.server = self.sim.serve("127.0.0.1", 0)
        self.client = BybitClient(
            self.server.base_url,
            clock=self.vt.clock,
            sleep=self.vt.sleep,
            rng=random.Random(1),
            **client_kwargs,
        )

    def log(self, path: str | None = None):
        return [e for e in self.sim.request_log if path is None or e.path == path]

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture(name="env")
def _env():
    env = Env()
    yield env
    env.close()


@pytest.fixture(name="make_env")
def _make_env():
    envs: list[Env] = []

    def make(options: SimulatorOptions | None = None, **client_kwargs) -> Env:
        envs.append(Env(options, **client_kwargs))
        return envs[-1]

    yield make
    for env in envs:
        env.close()


# ---------------------------------------------------------------- every endpoint


def test_server_time_and_ping_follow_the_simulator_clock(env):
    env.client.ping()
    assert env.client.server_time() == env.vt.clock.now()


def test_query_key_describes_the_master(env):
    key = env.client.query_key(master())
    assert key.key_id == MASTER_KEY
    assert key.is_master is True
    assert key.user_id == MASTER_UID
    assert key.parent_uid is None
    assert key.expires_at is not None  # an unbound master key expires like any other


def test_key_lifecycle_create_list_query_update_delete(env):
    """create → the new key works (query-api) → listed → updated → deleted → gone."""
    created = env.client.create_sub_key(master(), SPEC, note="rot-2001-a")
    assert created.permissions == PERMS
    assert created.note == "rot-2001-a"
    assert created.read_only is False
    assert [k.api_key for k in env.sim.keys_of(2001)] == [created.key_id]

    sub_creds = Credentials(api_key=created.key_id, secret=created.secret)
    itself = env.client.query_key(sub_creds)
    assert itself.key_id == created.key_id
    assert itself.is_master is False
    assert itself.parent_uid == MASTER_UID
    assert itself.user_id == 2001
    assert itself.expires_at == env.vt.clock.now() + timedelta(days=90)

    (listed,) = env.client.list_sub_keys(master(), 2001)
    assert listed.key_id == created.key_id
    assert listed.note == "rot-2001-a"
    assert listed.permissions == PERMS
    assert listed.expires_at == itself.expires_at

    updated = env.client.update_sub_key(
        master(), created.key_id, read_only=True, ips=("10.1.2.3",), permissions=PERMS
    )
    assert updated.read_only is True
    assert updated.ips == ("10.1.2.3",)
    (relisted,) = env.client.list_sub_keys(master(), 2001)
    assert relisted.read_only is True
    assert relisted.is_ip_bound
    assert relisted.expires_at is None  # IP-bound: Bybit reports no expiry

    env.client.delete_sub_key(master(), created.key_id)
    assert env.sim.keys_of(2001) == []
    assert env.client.list_sub_keys(master(), 2001) == ()
    env.client.delete_sub_key(master(), created.key_id)  # already gone: still fine
    with pytest.raises(ExchangeAuthFailed):
        env.client.query_key(sub_creds)


def test_list_sub_members_both_endpoints(env):
    assert [m.uid for m in env.client.list_sub_members(master())] == list(SUB_UIDS)
    assert [m.uid for m in env.client.list_sub_members(master(), paginated=True)] == list(SUB_UIDS)
    assert [e.path for e in env.log()] == ["/v5/user/query-sub-members", "/v5/user/submembers"]


def test_submembers_pagination_over_several_pages(env):
    for uid in range(3000, 3250):
        env.sim.add_sub_account(MASTER_UID, uid)
    members = env.client.list_sub_members(master(), paginated=True)
    assert len(members) == 252
    assert len({m.uid for m in members}) == 252
    assert len(env.log("/v5/user/submembers")) == 3


def test_sub_keys_pagination_over_more_than_one_page(make_env):
    env = make_env(SimulatorOptions(max_keys_per_uid=50))
    seeded = {env.sim.add_key(2002, note=f"k{i}").api_key for i in range(45)}
    keys = env.client.list_sub_keys(master(), 2002)
    assert {k.key_id for k in keys} == seeded
    assert len(keys) == 45
    assert len(env.log("/v5/user/sub-apikeys")) == 3


def test_rsa_key_signs_requests_the_simulator_accepts(env):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    seeded = env.sim.add_key(2001, rsa_public_key=public_pem)
    creds = Credentials(api_key=seeded.api_key, secret=Secret(pem), kind=KeyKind.RSA)
    assert env.client.query_key(creds).key_id == seeded.api_key
    wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_pem = wrong.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ExchangeAuthFailed) as info:
        env.client.query_key(replace(creds, secret=Secret(wrong_pem)))
    assert info.value.ret_code == 10004


# ---------------------------------------------------------------- errors from the simulator


def test_wrong_secret_and_unknown_key_are_auth_failures(env):
    with pytest.raises(ExchangeAuthFailed) as info:
        env.client.query_key(Credentials(api_key=MASTER_KEY, secret=Secret("WRONGSECRET00000000")))
    assert info.value.ret_code == 10004
    assert MASTER_KEY not in str(info.value)
    with pytest.raises(ExchangeAuthFailed) as info:
        env.client.query_key(Credentials(api_key="NOSUCHKEY000000001", secret=Secret("x" * 20)))
    assert info.value.ret_code == 10003
    assert len(env.log()) == 2  # permanent: no retries


def test_sub_key_on_master_only_endpoint_is_permission_denied(env):
    created = env.client.create_sub_key(master(), SPEC, note="rot")
    sub_creds = Credentials(api_key=created.key_id, secret=created.secret)
    with pytest.raises(ExchangePermissionDenied):
        env.client.list_sub_members(sub_creds)


def test_unknown_sub_uid_is_rejected(env):
    with pytest.raises(ExchangeRejected) as info:
        env.client.create_sub_key(master(), replace(SPEC, sub_uid=9999), note="rot")
    assert info.value.ret_code == 10001


def test_key_limit_is_key_limit_reached(make_env):
    env = make_env(SimulatorOptions(rate_limits_enabled=False))
    for _ in range(20):
        env.sim.add_key(2001)
    with pytest.raises(KeyLimitReached):
        env.client.create_sub_key(master(), SPEC, note="rot")
    assert len(env.sim.keys_of(2001)) == 20


# ---------------------------------------------------------------- faults


def test_clock_skew_is_corrected_after_one_10002(env):
    env.sim.faults.skew(timedelta(seconds=30))
    assert env.client.query_key(master()).key_id == MASTER_KEY
    assert [(e.path, e.ret_code) for e in env.log()] == [
        ("/v5/user/query-api", 10002),
        ("/v5/market/time", 0),
        ("/v5/user/query-api", 0),
    ]
    assert env.client.clock_offset == timedelta(seconds=30)
    env.client.create_sub_key(master(), SPEC, note="rot")  # later requests are right first time
    assert [e.ret_code for e in env.log(CREATE)] == [0]


def test_lost_create_response_is_outcome_unknown_and_exactly_one_key_exists(env):
    env.sim.faults.lose_response()
    with pytest.raises(ExchangeOutcomeUnknown):
        env.client.create_sub_key(master(), SPEC, note="rot-lost")
    assert len(env.log(CREATE)) == 1
    (key,) = env.sim.keys_of(2001)
    assert key.note == "rot-lost"  # the caller finds it by its note


def test_create_5xx_is_outcome_unknown_and_not_resent(env):
    env.sim.faults.server_errors(1.0, status=503, path=CREATE, count=1)
    with pytest.raises(ExchangeOutcomeUnknown) as info:
        env.client.create_sub_key(master(), SPEC, note="rot")
    assert info.value.http_status == 503
    assert len(env.log(CREATE)) == 1


def test_create_hang_times_out_as_outcome_unknown(make_env):
    env = make_env(timeout_s=0.3)
    env.sim.faults.hang(path=CREATE)
    with pytest.raises(ExchangeOutcomeUnknown):
        env.client.create_sub_key(master(), SPEC, note="rot")
    assert len(env.log(CREATE)) == 1


def test_reads_survive_5xx_by_retrying(env):
    env.sim.faults.server_errors(1.0, status=502, path="/v5/user/query-api", count=2)
    assert env.client.query_key(master()).key_id == MASTER_KEY
    assert [e.http_status for e in env.log()] == [502, 502, 200]
    assert len(env.vt.slept) == 2


def test_delete_whose_reply_was_lost_is_retried_and_succeeds(env):
    created = env.client.create_sub_key(master(), SPEC, note="rot")
    env.sim.faults.lose_response(path="/v5/user/delete-sub-api")
    env.client.delete_sub_key(master(), created.key_id)
    assert env.sim.keys_of(2001) == []
    assert len(env.log("/v5/user/delete-sub-api")) == 2


def test_rate_limit_burst_is_waited_out_until_reset(env):
    env.sim.faults.rate_limit_burst(2, path=CREATE)
    start = env.vt.clock.now()
    created = env.client.create_sub_key(master(), SPEC, note="rot")
    assert [e.ret_code for e in env.log(CREATE)] == [10006, 10006, 0]
    assert env.vt.clock.now() - start >= timedelta(seconds=2)  # reset is now+1 s each time
    assert [k.api_key for k in env.sim.keys_of(2001)] == [created.key_id]


def test_burst_of_50_creates_never_meets_10006(make_env):
    """The client's limiter spaces creates at 1/s: zero 10006 while the simulator enforces it."""
    env = make_env(SimulatorOptions(max_keys_per_uid=60))
    start = env.vt.clock.now()
    for i in range(50):
        env.client.create_sub_key(master(), SPEC, note=f"burst-{i}")
    creates = env.log(CREATE)
    assert len(creates) == 50
    assert [e.ret_code for e in creates] == [0] * 50
    assert len(env.sim.keys_of(2001)) == 50
    assert env.vt.clock.now() - start >= timedelta(seconds=49)


def test_burst_of_reads_within_10_per_second(env):
    for _ in range(35):
        env.client.query_key(master())
    assert {e.ret_code for e in env.log()} == {0}


def test_limiter_disabled_would_meet_10006(make_env):
    """Control experiment: with no client limiter, the same burst does hit the simulator's 1/s."""
    env = make_env(SimulatorOptions(max_keys_per_uid=60), max_retries=0)
    env.client._limiter = RateLimiter(clock=env.vt.clock, sleep=env.vt.sleep, limits={})
    env.client.create_sub_key(master(), SPEC, note="a")
    with pytest.raises(ExchangeRateLimited):
        env.client.create_sub_key(master(), SPEC, note="b")
    assert [e.ret_code for e in env.log(CREATE)] == [0, 10006]


def test_works_with_the_shared_simulator_fixture(simulator, sim_clock):
    """The project-wide fixture (IP-bound master on 127.0.0.1): no expiry, create works."""
    creds = Credentials(api_key=shared.MASTER_KEY, secret=Secret(shared.MASTER_SECRET))
    with BybitClient(simulator.base_url, clock=sim_clock, sleep=lambda _s: None) as client:
        key = client.query_key(creds)
        assert key.is_ip_bound
        assert key.expires_at is None
        assert key.deadline_day is None
        created = client.create_sub_key(creds, SPEC, note="fixture")
        assert [k.key_id for k in client.list_sub_keys(creds, 2001)] == [created.key_id]
