"""Authentication of the simulator: signatures over raw bytes, recv_window rule, key checks."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from rotator.clock import ManualClock, to_epoch_ms
from rotator.simulator import Simulator, SimulatorOptions
from rotator.simulator.auth import hmac_signature, string_to_sign

from fixtures.simulator import MASTER_KEY, MASTER_SECRET, SIM_START, SimClient, rsa_keypair

QUERY_API = "/v5/user/query-api"
CREATE = "/v5/user/create-sub-api"


@pytest.mark.parametrize(
    ("timestamp", "payload", "expected"),
    [
        (
            "1658384314791",
            "category=option&symbol=BTC-29JUL22-25000-C",
            "78d6ff096610435ed722777ee534bed6ee060cb946a2825bafe5e7b585108065",
        ),
        (
            "1658385579423",
            '{"category": "option"}',
            "a23824169b96ed954431f14395690320fda8ba0b69f92a9ae7ad94a2ec88939b",
        ),
        ("1658385579423", "", "48baf62c43586502828adedfb7189266f450ed4145d088c3586e36b384cfb9bd"),
    ],
)
def test_hmac_vectors_from_the_reference(timestamp, payload, expected):
    """The simulator's HMAC matches the reference's vectors (key TESTKEY, secret TESTSECRET)."""
    signed = string_to_sign(timestamp, "TESTKEY", "5000", payload.encode())
    assert hmac_signature("TESTSECRET", signed) == expected


def test_hmac_signed_get_is_accepted(master):
    """A correctly signed GET passes and gets the envelope."""
    body = master.get(QUERY_API).json()
    assert body["retCode"] == 0
    assert body["result"]["apiKey"] == MASTER_KEY


def test_rsa_signed_requests_are_accepted(sim_clock):
    """A key registered with an RSA public key verifies SHA256withRSA base64 signatures."""
    private, pem = rsa_keypair()
    sim = Simulator(clock=sim_clock)
    sim.add_account(1, "RSAMASTERKEY000001", rsa_public_key=pem, sub_uids=[11])
    with (
        sim.serve() as server,
        SimClient(
            server.base_url, "RSAMASTERKEY000001", clock=sim_clock, private_key=private
        ) as client,
    ):
        info = client.get(QUERY_API).json()
        assert info["retCode"] == 0
        assert info["result"]["rsaPublicKey"] == pem
        created = client.post(
            CREATE, {"subuid": 11, "readOnly": 0, "permissions": {"Spot": ["SpotTrade"]}}
        ).json()
        assert created["retCode"] == 0
        other, _ = rsa_keypair()
        client.private_key = other
        assert client.get(QUERY_API).json()["retCode"] == 10004


def test_every_signed_body_byte_matters(simulator, master):
    """Changing any single byte of a signed POST body yields 10004 and creates nothing."""
    text = json.dumps({"subuid": 2001, "readOnly": 0, "permissions": {"Spot": ["SpotTrade"]}})
    headers = master.headers(text)
    raw = text.encode()
    for i in range(len(raw)):
        tampered = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        reply = master.http.post(CREATE, content=tampered, headers=headers).json()
        assert reply["retCode"] == 10004, i
        assert reply["result"] == {}
    assert simulator.keys_of(2001) == []


def test_signature_is_over_the_raw_body_not_a_reserialisation(simulator, master):
    """Odd but valid JSON whitespace is fine as long as it is what was signed."""
    text = '{ "subuid" :2001,"readOnly":0 ,  "permissions":{"Spot":["SpotTrade"]}}'
    assert master.post(CREATE, text).json()["retCode"] == 0


def test_every_signed_query_byte_matters(master):
    """Tampering the raw query string, even reordering parameters, breaks the signature."""
    signed = "limit=20&subMemberId=2001"
    headers = master.headers(signed)
    ok = master.http.get(f"/v5/user/sub-apikeys?{signed}", headers=headers).json()
    assert ok["retCode"] == 0
    for tampered in (
        "limit=20&subMemberId=2002",
        "subMemberId=2001&limit=20",
        "limit=2&subMemberId=2001",
    ):
        reply = master.http.get(f"/v5/user/sub-apikeys?{tampered}", headers=headers).json()
        assert reply["retCode"] == 10004


@pytest.mark.parametrize("header", ["X-BAPI-TIMESTAMP", "X-BAPI-RECV-WINDOW", "X-BAPI-SIGN"])
def test_signed_headers_are_covered(master, sim_clock, header):
    """Changing the timestamp, the recv_window or the signature itself gives 10004."""
    headers = master.headers("")
    if header == "X-BAPI-TIMESTAMP":
        headers[header] = str(int(headers[header]) - 1)
    elif header == "X-BAPI-RECV-WINDOW":
        headers[header] = "5001"
    else:
        headers[header] = headers[header].upper()  # hex must be lowercase
    assert master.http.get(QUERY_API, headers=headers).json()["retCode"] == 10004


def test_sign_error_message_masks_the_key(master):
    """10004 echoes the origin string with timestamp, key and recv_window masked."""
    headers = master.headers('{"a": 1}')
    reply = master.http.post(CREATE, content=b'{"a": 2}', headers=headers).json()
    assert reply["retMsg"] == (
        'Error sign, please check your signature generation algorithm: origin_string[***{"a": 2}]'
    )
    assert MASTER_KEY not in reply["retMsg"]
    assert MASTER_SECRET not in reply["retMsg"]


def test_recv_window_boundaries(master, sim_clock):
    """Accepted iff server - recv_window <= ts < server + 1000; 10002 with the observed text."""
    now = to_epoch_ms(sim_clock.now())
    assert master.get(QUERY_API, timestamp=now - 5000).json()["retCode"] == 0
    assert master.get(QUERY_API, timestamp=now + 999).json()["retCode"] == 0
    stale = master.get(QUERY_API, timestamp=now - 5001).json()
    assert stale["retCode"] == 10002
    assert stale["retMsg"] == (
        "invalid request, please check your server timestamp or recv_window param. "
        f"req_timestamp[{now - 5001}],server_timestamp[{now}],recv_window[5000]"
    )
    assert master.get(QUERY_API, timestamp=now + 1000).json()["retCode"] == 10002
    wide = master.get(QUERY_API, timestamp=now - 20000, recv_window="20000").json()
    assert wide["retCode"] == 0


def test_absent_recv_window_defaults_to_5000(master, sim_clock):
    """Without X-BAPI-RECV-WINDOW the window is 5000 ms (and the string to sign has no window)."""
    now = to_epoch_ms(sim_clock.now())
    assert master.get(QUERY_API, timestamp=now - 5000, recv_window=None).json()["retCode"] == 0
    assert master.get(QUERY_API, timestamp=now - 5001, recv_window=None).json()["retCode"] == 10002


def test_sign_type_header_is_ignored(master):
    """X-BAPI-SIGN-TYPE is accepted with any value."""
    for value in ("2", "1", "whatever"):
        headers = master.headers("") | {"X-BAPI-SIGN-TYPE": value}
        assert master.http.get(QUERY_API, headers=headers).json()["retCode"] == 0


def test_missing_headers_and_unknown_key(master, sim_clock, sim_url):
    """No auth headers -> 10007; a key the simulator never issued -> 10003."""
    assert master.http.get(QUERY_API).json()["retCode"] == 10007
    with SimClient(sim_url, "NOSUCHKEY000000001", "x" * 36, clock=sim_clock) as stranger:
        reply = stranger.get(QUERY_API).json()
    assert (reply["retCode"], reply["retMsg"]) == (10003, "API key is invalid.")


def test_ip_bound_key_from_another_address_is_refused():
    """With client_ip set, a key bound elsewhere gets 10010; a matching address or CIDR passes."""
    clock = ManualClock(SIM_START)
    for client_ip, expected in (("10.0.0.2", 10010), ("10.0.0.1", 0), ("192.168.7.9", 0)):
        sim = Simulator(clock=clock, options=SimulatorOptions(client_ip=client_ip))
        sim.add_account(1, "BOUNDKEY0000000001", "s" * 36, ips=["10.0.0.1", "192.168.7.0/24"])
        with (
            sim.serve() as server,
            SimClient(server.base_url, "BOUNDKEY0000000001", "s" * 36, clock=clock) as client,
        ):
            assert client.get(QUERY_API).json()["retCode"] == expected, client_ip


def test_independent_hmac_matches_client(master):
    """The test client's signature is plain HMAC-SHA256 hex, computed independently here."""
    sig = master.sign("a=1", "1", "5000")
    expected = hmac.new(MASTER_SECRET.encode(), f"1{MASTER_KEY}5000a=1".encode(), hashlib.sha256)
    assert sig == expected.hexdigest()
