"""The official client, pybit 5.17, against the simulator with only its endpoint changed.

pybit stamps requests with the wall clock, so these simulators run on SystemClock; retries are
off (max_retries=1 is one attempt, retry_codes empty) so no test sleeps.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP
from rotator.clock import SystemClock
from rotator.simulator import SimulatorOptions

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, new_simulator, rsa_keypair


def session(base_url, key, secret, **kw):
    http = HTTP(api_key=key, api_secret=secret, max_retries=1, retry_codes=set(), **kw)
    http.endpoint = base_url
    return http


@pytest.fixture(name="live")
def _live():
    sim = new_simulator(SystemClock(), SimulatorOptions(rate_limits_enabled=False))
    with sim.serve() as server:
        yield sim, server.base_url


def test_pybit_full_key_cycle(live):
    """create -> list -> query with the new key -> update -> delete, all through pybit."""
    sim, url = live
    master = session(url, MASTER_KEY, MASTER_SECRET)
    assert master.get_server_time()["retCode"] == 0
    created = master.create_sub_api_key(
        subuid=2001, readOnly=0, note="rot", permissions={"Wallet": ["AccountTransfer"]}
    )["result"]
    listed = master.get_all_sub_api_keys(subMemberId="2001", limit=20)["result"]["result"]
    assert [k["apiKey"] for k in listed] == [created["apiKey"]]
    sub = session(url, created["apiKey"], created["secret"])
    assert sub.get_api_key_information()["result"]["userID"] == 2001
    updated = master.modify_sub_api_key(apikey=created["apiKey"], readOnly=1, ips="*")
    assert updated["result"]["readOnly"] == 1
    assert master.get_sub_uid_list()["result"]["subMembers"][0]["uid"] == "2001"
    assert master.get_sub_uid_list_unlimited(pageSize="1")["result"]["nextCursor"] == "2001"
    assert master.delete_sub_api_key(apikey=created["apiKey"])["retCode"] == 0
    with pytest.raises(InvalidRequestError) as failure:
        sub.get_api_key_information()
    assert failure.value.status_code == 10003
    assert sim.keys_of(2001) == []


def test_pybit_rsa_key(live):
    """pybit's rsa_authentication signs with a PEM private key the simulator verifies."""
    sim, url = live
    private, pem = rsa_keypair()
    sim.add_key(2001, api_key="RSASUBKEY000000001", rsa_public_key=pem)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    rsa_session = session(url, "RSASUBKEY000000001", private_pem, rsa_authentication=True)
    assert rsa_session.get_api_key_information()["result"]["rsaPublicKey"] == pem


def test_pybit_wrong_secret(live):
    _, url = live
    with pytest.raises(InvalidRequestError) as failure:
        session(url, MASTER_KEY, "wrong" * 7).get_api_key_information()
    assert failure.value.status_code == 10004
