"""Any unexpected exception in a protocol step is recorded like a temporary failure: the rotation
keeps its place, counts the failure, backs off, and finishes once the cause is gone (issue 10
item 2, engine side). A key is never stuck silently on "internal error".

The step runner (`rotator.engine.key_run.guarded_step`) records a non-RotatorError exception
through the same path as a TemporaryError; the failure class is "bug" (a metric label an operator
can alert on).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from injector import Injector
from rig import Rig
from rotator.policy import RotationPolicy

STEP_METHODS = {
    "create": ("exchange", "create_sub_key"),
    "verify": ("exchange", "query_key"),
    "promote": ("store", "write"),
    "revoke": ("exchange", "delete_sub_key"),
}


@pytest.mark.parametrize("step", sorted(STEP_METHODS))
def test_unexpected_exception_in_a_step_is_recorded_with_backoff(rig: Rig, step):
    """An unexpected exception (RuntimeError) inside a step: the failure is on the rotation
    (count, next try, error class), the report names a failure, and a later run completes it."""
    rig.add_key("alpha", policy=RotationPolicy(grace_period=timedelta(0)))
    engine = rig.engine()
    engine.reconcile()  # a first key, so the forced rotation below has an old key to revoke
    secrets: list[str] = []
    target, method = STEP_METHODS[step]
    exchange = Injector(
        rig.client(),
        method if target == "exchange" else None,
        secrets,
        # verify's query-api is the new key's, not the master's check at the start of a run
        when=lambda *a, **_k: step != "verify" or a[0].api_key != "MASTERKEY0000000001",
    )
    store = Injector(
        rig.store,
        method if target == "store" else None,
        secrets,
        when=lambda path, *_a, **_k: path.endswith("/keys/alpha"),
    )
    engine = rig.engine(exchange=exchange, store=store)
    report = engine.reconcile(force={"alpha"}).keys[0]
    assert exchange.fired or store.fired, f"the {step} step was never reached"
    # Labelled "bug" (metrics, notifications) AND recorded on the rotation, not dropped:
    assert report.failure == "bug"
    rot = rig.state("alpha").rotation
    assert rot is not None, "the rotation in flight was lost"
    assert rot.failures == 1
    assert rot.next_try is not None
    assert rot.next_try > rig.clock.now()
    assert "RuntimeError" in (rot.last_error or "")
    # The cause is gone (the injector fires once): after the backoff, the rotation completes.
    for _ in range(10):
        rig.clock.advance(timedelta(hours=1))
        if engine.reconcile().keys[0].state == "idle" and rig.state("alpha").rotation is None:
            break
    assert rig.state("alpha").rotation is None
    assert rig.works(rig.consumer("alpha"))


def test_unexpected_exception_at_the_account_level_is_reported_not_raised(rig: Rig):
    """The master's query-api raising something unexpected ends the account's run with an error
    report (keys failing, class "bug"); nothing escapes reconcile()."""
    rig.add_key("alpha")
    exchange = Injector(rig.client(), "query_key", [])
    result = rig.engine(exchange=exchange).reconcile()
    assert exchange.fired
    [account] = result.accounts
    assert "RuntimeError" in (account.error or "")
    assert result.keys[0].failure == "bug"
    assert result.keys[0].state == "failed"
