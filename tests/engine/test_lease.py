"""The account lease on the real OpenBao: election, renewal, takeover, release, the fence."""

from __future__ import annotations

import pytest
from leases import SETTINGS, Mono
from rotator.errors import LeaseLost, StateCorrupt
from rotator.lease import AccountLease, LeaseRecord, identity_pid, new_identity


def lease(vault_store, sim_clock, path, mono, name):
    return AccountLease(
        store=vault_store,
        path=path,
        identity=name,
        settings=SETTINGS,
        clock=sim_clock,
        monotonic=mono,
    )


@pytest.fixture(name="path")
def _path(vault_prefix):
    return f"{vault_prefix}/leases/main"


def test_first_candidate_acquires_with_token_1(vault_store, sim_clock, path):
    """A free lease is taken at once; the record names the holder and token 1."""
    mono = Mono()
    a = lease(vault_store, sim_clock, path, mono, "a")
    assert a.step() is True
    assert a.token == 1
    record = LeaseRecord.from_record(vault_store.read(path).data, path)
    assert (record.holder, record.token, record.released) == ("a", 1, False)


def test_a_live_holder_is_never_taken_over(vault_store, sim_clock, path):
    """While the holder renews, a candidate sees the record change and waits forever."""
    mono_a, mono_b = Mono(), Mono()
    a = lease(vault_store, sim_clock, path, mono_a, "a")
    b = lease(vault_store, sim_clock, path, mono_b, "b")
    a.step()
    for _ in range(20):
        mono_a.t += 15
        mono_b.t += 15
        assert a.step() is True
        assert b.step() is False
    assert b.holder == "a"
    assert a.token == 1


def test_takeover_after_lease_duration_without_change(vault_store, sim_clock, path):
    """A holder that stops renewing loses the lease after lease_duration, token + 1."""
    mono_a, mono_b = Mono(), Mono()
    a = lease(vault_store, sim_clock, path, mono_a, "a")
    b = lease(vault_store, sim_clock, path, mono_b, "b")
    a.step()
    assert b.step() is False  # first sight of a's record
    mono_b.t += 45
    assert b.step() is False  # unchanged for 45 s < 60 s
    mono_b.t += 15
    assert b.step() is True  # unchanged for 60 s: taken over
    assert b.token == 2
    # a woke up: its renewal deadline has passed long ago on its own clock too
    mono_a.t += 60
    assert a.holds() is False
    with pytest.raises(LeaseLost):
        a.fence()
    assert a.step() is False
    assert a.holder == "b"


def test_holder_stops_acting_after_renew_deadline(vault_store, sim_clock, path):
    """No successful renewal for renew_deadline: the fence refuses, before anyone may take over."""
    mono = Mono()
    a = lease(vault_store, sim_clock, path, mono, "a")
    a.step()
    mono.t += 39
    a.fence()
    mono.t += 1
    with pytest.raises(LeaseLost):
        a.fence()
    assert a.token is None


def test_fence_strict_sees_a_takeover_the_local_check_cannot(vault_store, sim_clock, path):
    """A holder paused after its renewal: its local deadline still looks fine, Vault does not."""
    mono_a, mono_b = Mono(), Mono()
    a = lease(vault_store, sim_clock, path, mono_a, "a")
    b = lease(vault_store, sim_clock, path, mono_b, "b")
    a.step()
    b.step()
    mono_b.t += 60
    assert b.step() is True
    a.fence()  # a's monotonic clock did not move (it was frozen): the local check passes
    with pytest.raises(LeaseLost, match="moved to b"):
        a.fence_strict()
    assert a.holds() is False


def test_release_hands_over_at_once(vault_store, sim_clock, path):
    """A released lease is taken on the next round, with a new token."""
    mono = Mono()
    a = lease(vault_store, sim_clock, path, mono, "a")
    b = lease(vault_store, sim_clock, path, Mono(), "b")
    a.step()
    a.release()
    assert a.holds() is False
    assert b.step() is True
    assert b.token == 2


def test_own_lapsed_lease_is_retaken_with_a_new_token(vault_store, sim_clock, path):
    """After its own lapse (Vault was down) the holder re-takes at once, fencing its old token."""
    mono = Mono()
    a = lease(vault_store, sim_clock, path, mono, "a")
    a.step()
    mono.t += 41
    assert a.holds() is False
    assert a.step() is True
    assert a.token == 2


def test_concurrent_candidates_elect_exactly_one(vault_store, sim_clock, path):
    """Check-and-set: of many candidates racing for a free lease, exactly one wins."""
    candidates = [lease(vault_store, sim_clock, path, Mono(), f"c{i}") for i in range(5)]
    results = [c.step() for c in candidates]
    assert results.count(True) == 1


def test_corrupt_lease_record_is_a_clear_error(vault_store, sim_clock, path):
    """A record that is not a lease names the path and the fix."""
    vault_store.write(path, {"holder": "x", "token": "seven"}, cas=0)
    with pytest.raises(StateCorrupt, match="delete it"):
        LeaseRecord.from_record(vault_store.read(path).data, path)
    a = lease(vault_store, sim_clock, path, Mono(), "a")
    assert a.step() is False  # logged, never raised: the loop carries on


def test_identity_is_unique_per_process_and_names_the_pid():
    """Two identities on one host and pid still differ; the pid can be read back."""
    one, two = new_identity(), new_identity()
    assert one != two
    assert identity_pid(one) is not None
    assert identity_pid("custom") is None
