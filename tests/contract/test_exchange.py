"""The Exchange contract: Bybit's key rules as the engine relies on them, for MemoryExchange and
for BybitClient on the real simulator alike."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rotator.errors import (
    ExchangeAuthFailed,
    ExchangePermissionDenied,
    ExchangeRejected,
    KeyLimitReached,
)
from rotator.model import Credentials, KeySpec, ListedStatus, Secret, normalize_permissions
from worlds import OTHER_SUB_UID

from fixtures.simulator import MASTER_UID, SIM_START

PERMS = normalize_permissions({"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]})
SUB = 2001


def spec(*, ips=(), read_only=False, sub_uid=SUB):
    return KeySpec(sub_uid=sub_uid, read_only=read_only, permissions=PERMS, ips=ips)


def test_a_created_key_is_listed_as_asked_and_expires_in_90_days(world):
    """create-sub-api: the listing shows note, permissions, read-only, unbound, +90 d."""
    created = world.exchange.create_sub_key(world.master, spec(read_only=True), note="rot:a")
    assert created.secret.reveal()
    assert (created.note, created.read_only, created.permissions) == ("rot:a", True, PERMS)
    (listed,) = world.exchange.list_sub_keys(world.master, SUB)
    assert listed.key_id == created.key_id
    assert (listed.note, listed.read_only, listed.permissions) == ("rot:a", True, PERMS)
    assert listed.ips == ("*",)
    assert listed.created_at == SIM_START
    assert listed.expires_at == SIM_START + timedelta(days=90)
    assert listed.status is ListedStatus.VALID
    assert listed.deadline_day == 90


def test_an_ip_bound_key_never_expires(world):
    """A key bound to IPs has no expiry until a password change."""
    world.exchange.create_sub_key(world.master, spec(ips=("127.0.0.1", "10.0.0.0/8")), note="b")
    (listed,) = world.exchange.list_sub_keys(world.master, SUB)
    assert listed.ips == ("127.0.0.1", "10.0.0.0/8")
    assert listed.expires_at is None
    assert listed.status is ListedStatus.PERMANENT


def test_the_new_secret_signs_query_api(world):
    """query-api signed by the new key describes that key: its sub UID and parent."""
    created = world.exchange.create_sub_key(world.master, spec(), note="q")
    info = world.exchange.query_key(Credentials(api_key=created.key_id, secret=created.secret))
    assert info.key_id == created.key_id
    assert (info.user_id, info.is_master, info.parent_uid) == (SUB, False, MASTER_UID)
    assert info.permissions == PERMS
    assert info.expires_at == SIM_START + timedelta(days=90)
    master = world.exchange.query_key(world.master)
    assert (master.user_id, master.is_master, master.parent_uid) == (MASTER_UID, True, None)
    assert master.expires_at is None  # the fixture binds the master key


def test_keys_are_listed_oldest_first_per_sub(world):
    """Each sub's listing holds its own keys, in the order they were made."""
    first = world.exchange.create_sub_key(world.master, spec(), note="1")
    world.advance(timedelta(seconds=5))
    second = world.exchange.create_sub_key(world.master, spec(), note="2")
    other = world.exchange.create_sub_key(world.master, spec(sub_uid=2002), note="3")
    assert [k.key_id for k in world.exchange.list_sub_keys(world.master, SUB)] == [
        first.key_id,
        second.key_id,
    ]
    assert [k.key_id for k in world.exchange.list_sub_keys(world.master, 2002)] == [other.key_id]


def test_twenty_keys_per_sub_and_no_more(world):
    """The 21st key of a sub is KeyLimitReached; the other sub is not affected."""
    for n in range(20):
        world.exchange.create_sub_key(world.master, spec(), note=f"k{n}")
    with pytest.raises(KeyLimitReached):
        world.exchange.create_sub_key(world.master, spec(), note="one too many")
    assert len(world.exchange.list_sub_keys(world.master, SUB)) == 20
    world.exchange.create_sub_key(world.master, spec(sub_uid=2002), note="elsewhere")


def test_a_deleted_key_is_gone_and_deleting_again_is_no_error(world):
    """delete-sub-api by the master; the key no longer signs; a second delete is fine."""
    created = world.exchange.create_sub_key(world.master, spec(), note="d")
    creds = Credentials(api_key=created.key_id, secret=created.secret)
    world.exchange.delete_sub_key(world.master, created.key_id)
    assert world.exchange.list_sub_keys(world.master, SUB) == ()
    with pytest.raises(ExchangeAuthFailed):
        world.exchange.query_key(creds)
    world.exchange.delete_sub_key(world.master, created.key_id)


def test_bad_credentials_fail_authentication(world):
    """An unknown key or a wrong secret is ExchangeAuthFailed (permanent)."""
    created = world.exchange.create_sub_key(world.master, spec(), note="x")
    with pytest.raises(ExchangeAuthFailed):
        world.exchange.query_key(Credentials(api_key=created.key_id, secret=Secret("wrong")))
    with pytest.raises(ExchangeAuthFailed):
        world.exchange.query_key(Credentials(api_key="NOSUCHKEY000000000", secret=Secret("s")))
    with pytest.raises(ExchangeAuthFailed):
        world.exchange.list_sub_keys(Credentials(api_key="NOSUCHKEY", secret=Secret("s")), SUB)


def test_an_unbound_key_stops_working_after_90_days(world):
    """At its expiry a key no longer signs; the listing says EXPIRED."""
    created = world.exchange.create_sub_key(world.master, spec(), note="e")
    creds = Credentials(api_key=created.key_id, secret=created.secret)
    world.advance(timedelta(days=85))
    (soon,) = world.exchange.list_sub_keys(world.master, SUB)
    assert soon.status is ListedStatus.EXPIRING_SOON
    assert soon.deadline_day == 5
    world.exchange.query_key(creds)
    world.advance(timedelta(days=5))
    with pytest.raises(ExchangeAuthFailed):
        world.exchange.query_key(creds)
    (gone,) = world.exchange.list_sub_keys(world.master, SUB)
    assert gone.status is ListedStatus.EXPIRED


def test_a_password_change_ends_every_key_seven_days_later(world):
    """Bound, unbound and master keys all get an expiry 7 days after the change."""
    bound = world.exchange.create_sub_key(world.master, spec(ips=("127.0.0.1",)), note="b")
    world.exchange.create_sub_key(world.master, spec(), note="u")
    at = SIM_START + timedelta(hours=1)
    world.declare_password_change(MASTER_UID, at)
    listed = {k.note: k for k in world.exchange.list_sub_keys(world.master, SUB)}
    assert listed["b"].expires_at == at + timedelta(days=7)
    assert listed["u"].expires_at == at + timedelta(days=7)
    assert world.exchange.query_key(world.master).expires_at == at + timedelta(days=7)
    world.advance(timedelta(days=7, hours=1))
    with pytest.raises(ExchangeAuthFailed):
        world.exchange.query_key(Credentials(api_key=bound.key_id, secret=bound.secret))


def test_a_sub_key_may_not_manage_keys(world):
    """A sub-account key on a master-only endpoint is ExchangePermissionDenied."""
    sub_key = world.add_key(SUB, permissions=PERMS)
    with pytest.raises(ExchangePermissionDenied):
        world.exchange.list_sub_keys(sub_key, SUB)
    with pytest.raises(ExchangePermissionDenied):
        world.exchange.create_sub_key(sub_key, spec(), note="x")
    with pytest.raises(ExchangePermissionDenied):
        world.exchange.list_sub_members(sub_key)
    other = world.exchange.create_sub_key(world.master, spec(), note="o")
    with pytest.raises(ExchangeRejected):
        world.exchange.delete_sub_key(sub_key, other.key_id)
    assert len(world.exchange.list_sub_keys(world.master, SUB)) == 2


def test_a_master_acts_only_on_its_own_subs(world):
    """Another master's sub is refused; deleting another master's key changes nothing."""
    with pytest.raises(ExchangeRejected):
        world.exchange.list_sub_keys(world.master, OTHER_SUB_UID)
    with pytest.raises(ExchangeRejected):
        world.exchange.create_sub_key(world.master, spec(sub_uid=OTHER_SUB_UID), note="x")
    theirs = world.exchange.create_sub_key(
        world.other_master, spec(sub_uid=OTHER_SUB_UID), note="t"
    )
    world.exchange.delete_sub_key(world.master, theirs.key_id)
    assert [k.key_id for k in world.exchange.list_sub_keys(world.other_master, OTHER_SUB_UID)] == [
        theirs.key_id
    ]


def test_keys_made_elsewhere_are_listed(world):
    """A key made in the web UI shows in the listing beside ours."""
    outside = world.add_key(SUB, permissions=PERMS, ips=("127.0.0.1",))
    (listed,) = world.exchange.list_sub_keys(world.master, SUB)
    assert listed.key_id == outside.api_key
    assert world.exchange.query_key(outside).user_id == SUB


def test_sub_members_and_server_time(world):
    """The master's sub UIDs, and Bybit's clock."""
    assert [m.uid for m in world.exchange.list_sub_members(world.master)] == [2001, 2002]
    assert abs(world.exchange.server_time() - world.clock.now()) < timedelta(seconds=1)


def test_update_binds_and_unbinds_a_key(world):
    """update-sub-api: binding IPs ends the lifetime; unbinding starts a fresh 90 days."""
    created = world.exchange.create_sub_key(world.master, spec(), note="m")
    other_perms = normalize_permissions({"Spot": ["SpotTrade"]})
    reply = world.exchange.update_sub_key(
        world.master, created.key_id, read_only=True, ips=("127.0.0.1",), permissions=other_perms
    )
    assert (reply.key_id, reply.note, reply.read_only) == (created.key_id, "m", True)
    assert (reply.permissions, reply.ips) == (other_perms, ("127.0.0.1",))
    (bound,) = world.exchange.list_sub_keys(world.master, SUB)
    assert (bound.expires_at, bound.read_only, bound.permissions) == (None, True, other_perms)
    world.advance(timedelta(days=10))
    world.exchange.update_sub_key(
        world.master, created.key_id, read_only=False, ips=(), permissions=PERMS
    )
    (unbound,) = world.exchange.list_sub_keys(world.master, SUB)
    assert unbound.ips == ("*",)
    assert unbound.expires_at == SIM_START + timedelta(days=100)


def test_update_of_a_key_that_is_not_ours_is_refused(world):
    """A key of another master's sub, or no key at all: ExchangeRejected, nothing changes."""
    theirs = world.exchange.create_sub_key(
        world.other_master, spec(sub_uid=OTHER_SUB_UID), note="t"
    )
    for key_id in (theirs.key_id, "NOSUCHKEY000000000"):
        with pytest.raises(ExchangeRejected):
            world.exchange.update_sub_key(
                world.master, key_id, read_only=True, ips=("127.0.0.1",), permissions=PERMS
            )
    (listed,) = world.exchange.list_sub_keys(world.other_master, OTHER_SUB_UID)
    assert (listed.read_only, listed.ips) == (False, ("*",))
