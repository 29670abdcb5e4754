"""No secret, signature or full key id in any log line or exception the client produces."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

import httpx
import pytest
import structlog
from bybit_support import VirtualTime
from rotator.adapters.bybit import BybitClient
from rotator.errors import RotatorError
from rotator.model import Credentials, KeySpec, Secret, fingerprint, normalize_permissions
from rotator.simulator import Simulator
from structlog.testing import capture_logs

MASTER_KEY = "MASTERKEY0000000001"
MASTER_SECRET = "MASTERSECRET00000000000000000000001"
SPEC = KeySpec(
    sub_uid=2001, read_only=False, permissions=normalize_permissions({"Spot": ["SpotTrade"]})
)


class RecordingTransport(httpx.BaseTransport):
    """The real loopback transport, remembering every signature and key id that went out."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for name in ("X-BAPI-SIGN", "X-BAPI-API-KEY"):
            if name in request.headers:
                self.sent.add(request.headers[name])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_no_secret_signature_or_key_id_in_logs_or_exceptions(caplog):
    vt = VirtualTime()
    sim = Simulator(clock=vt.clock, seed=0)
    sim.add_account(uid=1000, api_key=MASTER_KEY, api_secret=MASTER_SECRET, sub_uids=[2001])
    server = sim.serve("127.0.0.1", 0)
    transport = RecordingTransport()
    client = BybitClient(
        server.base_url,
        clock=vt.clock,
        sleep=vt.sleep,
        rng=random.Random(3),
        transport=transport,
    )
    master = Credentials(api_key=MASTER_KEY, secret=Secret(MASTER_SECRET))
    texts: list[str] = []
    created_ids: list[str] = []
    secrets = [MASTER_SECRET]

    def attempt(fn) -> None:
        try:
            fn()
        except RotatorError as exc:
            texts.extend([str(exc), repr(exc), str(exc.args), str(vars(exc))])

    caplog.set_level(logging.DEBUG)
    try:
        with capture_logs() as logs:
            sim.faults.skew(timedelta(seconds=20))
            created = client.create_sub_key(master, SPEC, note="rot-a")
            created_ids.append(created.key_id)
            secrets.append(created.secret.reveal())
            # (the model records' own reprs show key_id by design: not part of this check)
            sub = Credentials(api_key=created.key_id, secret=created.secret)
            client.query_key(sub)
            sim.faults.server_errors(1.0, status=503, path="/v5/user/query-api", count=2)
            client.query_key(master)
            sim.faults.lose_response()
            attempt(lambda: client.create_sub_key(master, SPEC, note="rot-lost"))
            created_ids.extend(k.api_key for k in sim.keys_of(2001))
            attempt(
                lambda: client.query_key(
                    Credentials(api_key=MASTER_KEY, secret=Secret("WRONGSECRET000001"))
                )
            )
            attempt(
                lambda: client.query_key(
                    Credentials(api_key=created.key_id, secret=Secret("WRONGSECRET000002"))
                )
            )
            sim.faults.rate_limit_burst(1, path="/v5/user/update-sub-api")
            client.update_sub_key(
                master, created.key_id, read_only=True, ips=(), permissions=SPEC.permissions
            )
            client.delete_sub_key(master, created.key_id)
            client.delete_sub_key(master, created.key_id)
            attempt(lambda: client.delete_sub_key(sub, created.key_id))
    finally:
        client.close()
        server.close()

    texts.extend(str(entry) for entry in logs)
    texts.extend(structlog.processors.JSONRenderer()(None, "", dict(e)) for e in logs)
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(repr(e) for e in sim.request_log)
    blob = "\n".join(texts)

    events = {e["event"] for e in logs}
    assert {"bybit.request.retried", "bybit.clock.resynced", "bybit.request.failed"} <= events
    assert fingerprint(MASTER_KEY) in blob  # key_fp is how keys are named instead
    signatures = {s for s in transport.sent if len(s) == 64}
    assert len(signatures) > 10
    forbidden = [*secrets, *signatures, MASTER_KEY, *created_ids]
    leaked = [value for value in forbidden if value in blob]
    assert leaked == [], f"{len(leaked)} sensitive value(s) leaked"
    assert "WRONGSECRET" not in blob


def test_origin_string_of_a_10004_is_dropped():
    body = (
        b'{"retCode":10004,"retMsg":"Error sign, please check your signature generation '
        b'algorithm: origin_string[1700000000000MASTERKEY00000000015000{\\"apikey\\":'
        b'\\"TARGETKEY000000001\\"}]","result":{},"retExtInfo":{},"time":1}'
    )
    vt = VirtualTime()
    client = BybitClient(
        "http://127.0.0.1:9",
        clock=vt.clock,
        sleep=vt.sleep,
        transport=httpx.MockTransport(lambda _r: httpx.Response(200, content=body)),
    )
    master = Credentials(api_key="MASTERKEY0000000001", secret=Secret("S" * 36))
    with client, pytest.raises(RotatorError) as info:
        client.delete_sub_key(master, "TARGETKEY000000001")
    text = f"{info.value} {info.value.__dict__}"
    assert "origin_string[[redacted]]" in text
    assert "TARGETKEY000000001" not in text
    assert "MASTERKEY0000000001" not in text
    assert "check your signature" in text  # Bybit's message itself is kept
