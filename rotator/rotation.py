"""The rotation engine: level-triggered reconcile and the crash-safe rotation protocol.

`Engine.reconcile()` reads Bybit (one sub-apikeys listing per sub UID) and Vault, compares them with
the configured keys, and moves every key that has something due by as many protocol steps as it
can, each step recorded with check-and-set *before* the next side effect:

    idle ─due─▶ PLANNED ─create─▶ CREATED ─verify─▶ VERIFIED ─promote─▶ PROMOTED
                                                                       │ hand off
                                  idle ◀─revoke old key (grace over)─ HANDED_OFF

A crash anywhere leaves a record from which the next reconcile resumes: a create whose reply was
lost is found by the rotation id in its Bybit note and deleted (its secret is unknowable), then
created again. Two replicas never act on the same step: each side effect is preceded by a CAS
"claim" write; the loser gets StoreConflict and backs off. See docs/rotation.md.

`Engine` wires the parts (rotator/engine/: one module per concept) and runs each account: its
master key, password-change detection, every key's run (rotator/engine/key_run.py), orphans.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from rotator.clock import Clock
from rotator.engine.adopt import adopt
from rotator.engine.key_run import reconcile_key_isolated
from rotator.engine.orphan_sweep import orphans
from rotator.engine.parts import AccountRun, Parts
from rotator.engine.records import StateRecords
from rotator.errors import (
    ConfigError,
    LeaseLost,
    RotatorError,
    StateCorrupt,
    StoreConflict,
    StoreDenied,
)
from rotator.failures import FailureClass
from rotator.key_report import (
    AccountReport,
    KeyReport,
    ReconcileResult,
    unknown_report,
    with_signals,
)
from rotator.model import (
    Credentials,
    ExchangeKey,
    KeyKind,
    ManagedAccount,
    ManagedKey,
    Secret,
    fingerprint,
)
from rotator.password_change import signalled_by_master
from rotator.ports import Authority, Exchange, HandOff, KeyStore, NoHandOff, SoleActor
from rotator.progress import Observer, ignore, shield
from rotator.state import AccountState

log = structlog.get_logger(__name__)

_SOLE = SoleActor()


class Engine:
    """Reconciles managed keys. Thread-safe per account only: run one account from one thread."""

    def __init__(
        self,
        *,
        exchange: Exchange,
        store: KeyStore,
        clock: Clock,
        accounts: Sequence[ManagedAccount],
        keys: Sequence[ManagedKey],
        handoff: HandOff | None = None,
        owner: str = "rotator",
        sleep: Callable[[float], None] = time.sleep,
        should_stop: Callable[[], bool] | None = None,
        authorities: Mapping[str, Authority] | None = None,
        observer: Observer = ignore,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.accounts = tuple(accounts)
        self.keys = tuple(keys)
        self.handoff = handoff or NoHandOff()
        self.owner = owner
        self._sleep = sleep
        # Asked before every protocol step: True (the daemon is stopping) finishes the step in
        # flight and starts no other; the record says where the next run resumes.
        self.should_stop: Callable[[], bool] = should_stop or (lambda: False)
        # The right to act, per account (its lease); an account not named here has a sole actor.
        self.authorities: dict[str, Authority] = dict(authorities or {})
        # The last (state, version) this engine read or wrote per key.
        self._records = StateRecords()
        self._observer = shield(observer)  # told of each milestone (rotator/progress.py)

    def master_credentials(self, account: str) -> Credentials:
        """The account's master key from Vault (the daemon lists its sub-accounts with it)."""
        return self._master(next(a for a in self.accounts if a.name == account))

    def authority(self, account: str) -> Authority:
        return self.authorities.get(account) or _SOLE

    def _parts(self, account: str) -> Parts:
        """The collaborators of one account's run, as they are now."""
        return Parts(
            exchange=self.exchange,
            store=self.store,
            clock=self.clock,
            handoff=self.handoff,
            authority=self.authority(account),
            records=self._records,
            owner=self.owner,
            sleep=self._sleep,
            observer=self._observer,
        )

    # ================================================================== public
    def reconcile(
        self, *, only: Iterable[str] | None = None, force: Iterable[str] = ()
    ) -> ReconcileResult:
        """Bring every (or `only` the named) key a step closer to healthy; one key's failure
        never stops the others."""
        return self._run(only, frozenset(force), act=True)

    def inspect(self, *, only: Iterable[str] | None = None) -> ReconcileResult:
        """What reconcile would see and do, with no side effect at all (reads only)."""
        return self._run(only, frozenset(), act=False)

    def _run(
        self, only: Iterable[str] | None, forced: frozenset[str], *, act: bool
    ) -> ReconcileResult:
        started = self.clock.now()
        wanted = set(only) if only is not None else None
        key_reports: list[KeyReport] = []
        account_reports: list[AccountReport] = []
        for account in self.accounts:
            keys = [
                k
                for k in self.keys
                if k.account == account.name and (wanted is None or k.name in wanted)
            ]
            if wanted is not None and not keys:
                continue
            areport, kreports = self._reconcile_account(account, keys, forced, act=act)
            account_reports.append(areport)
            key_reports.extend(kreports)
        return ReconcileResult(
            started_at=started,
            finished_at=self.clock.now(),
            keys=tuple(key_reports),
            accounts=tuple(account_reports),
        )

    def declare_password_change(self, account_name: str, at: datetime) -> AccountState:
        """Record that the account's login password changed at `at` (rotator password-changed)."""
        account = next(a for a in self.accounts if a.name == account_name)
        for attempt in range(3):  # the daemon may write the same record: re-read and re-apply
            self.authority(account_name).fence()
            current = self.store.read(account.state_path)
            state = AccountState.from_record(current.data) if current else AccountState()
            state = state.with_password_change(at)
            try:
                self.store.write(
                    account.state_path, state.to_record(), cas=current.version if current else 0
                )
                break
            except StoreConflict:
                if attempt == 2:
                    raise
        log.warning("password_change.declared", account=account_name, at=at.isoformat())
        return state

    def adopt(self, name: str, key_id: str, secret: Secret) -> KeyReport:
        """Take an existing key (e.g. made by hand in the web UI) under management
        (rotator/engine/adopt.py)."""
        key = next((k for k in self.keys if k.name == name), None)
        if key is None:
            raise ConfigError(f"no key named {name!r} in the config")
        return adopt(self._parts(key.account), key, key_id, secret)

    # ================================================================== accounts
    def _reconcile_account(
        self,
        account: ManagedAccount,
        keys: Sequence[ManagedKey],
        forced: frozenset[str],
        *,
        act: bool,
    ) -> tuple[AccountReport, list[KeyReport]]:
        """One account's run: its master key and record, every key's run, then what the run
        learnt about the account (a password change, orphans)."""
        parts = self._parts(account.name)
        try:
            if act:
                parts.authority.fence()
            master = self._master(account)
            astate_v = self.store.read(account.state_path)
            astate = AccountState.from_record(astate_v.data) if astate_v else AccountState()
            info = self.exchange.query_key(master)
        except RotatorError as exc:
            log.error("account.reconcile.failed", account=account.name, error=exc.message)
            return _unreadable(account, keys, f"account {account.name}: {exc.message}")
        except Exception as exc:  # a bug or an adapter letting something through
            log.exception("account.reconcile.crashed", account=account.name)
            error = f"account {account.name}: internal error {type(exc).__name__} (a bug)"
            return _unreadable(account, keys, error, FailureClass.BUG)
        if info.is_master is False:
            error = (
                f"account {account.name}: the key at {account.master_path} is a sub-account key; "
                "store the MASTER account's key there"
            )
            return _unreadable(account, keys, error)

        run = AccountRun(
            parts=parts, account=account, master=master, account_state=astate, force=forced
        )
        detected = self._detect_password_change(run, info)
        reports = [
            reconcile_key_isolated(run, k, act=act, should_stop=self.should_stop) for k in keys
        ]
        detected = _signalled_by_keys(run) or detected
        if act and run.account_state != astate:
            # On a conflict another writer recorded the same facts; the next run re-reads.
            with contextlib.suppress(StoreConflict, LeaseLost):
                parts.authority.fence()
                self.store.write(
                    account.state_path,
                    run.account_state.to_record(),
                    cas=astate_v.version if astate_v else 0,
                )
        changed_at = run.account_state.password_changed_at
        reports = [
            with_signals(k, r, run.listings.get(k.spec.sub_uid, ()), changed_at)
            for k, r in zip(keys, reports, strict=True)
        ]
        account_keys = tuple(k for k in self.keys if k.account == account.name)
        return (
            replace(
                orphans(run, keys, account_keys, act=act),
                name=account.name,
                master_expires_at=info.expires_at,
                master_ok=True,
                password_changed_at=changed_at,
                password_change_detected_now=detected,
                password_change_pending_keys=sum(1 for r in reports if r.password_change_pending),
            ),
            reports,
        )

    def _master(self, account: ManagedAccount) -> Credentials:
        record = self.store.read(account.master_path)
        if record is None:
            raise StoreDenied(
                f"no master key at Vault path {account.master_path}; store it with "
                f"`bao kv put <mount>/{account.master_path} api_key=... api_secret=-` "
                "(the secret from stdin)"
            )
        api_key, api_secret = record.data.get("api_key"), record.data.get("api_secret")
        if not isinstance(api_key, str) or not isinstance(api_secret, str) or not api_key:
            raise StateCorrupt(
                f"the master key record at {account.master_path} needs string fields "
                "api_key and api_secret"
            )
        kind = KeyKind.RSA if record.data.get("kind") == "rsa" else KeyKind.HMAC
        return Credentials(api_key=api_key, secret=Secret(api_secret), kind=kind)

    def _detect_password_change(self, run: AccountRun, master_info: ExchangeKey) -> bool:
        """An expiry that appears or moves earlier, to within the grace, on the same master key
        means the account's password changed (rotator/password_change.py decides)."""
        old = run.account_state
        fp = fingerprint(master_info.key_id)
        grace = max((k.policy.password_change_grace for k in self.keys), default=timedelta(days=7))
        changed_at = signalled_by_master(
            known_fp=old.master_key_fp,
            known_expiry=old.master_expires_at,
            known_change=old.password_changed_at,
            master_fp=fp,
            reported=master_info.expires_at,
            now=self.clock.now(),
            grace=grace,
        )
        run.account_state = old.with_master(key_fp=fp, expires_at=master_info.expires_at)
        if changed_at is not None:
            run.account_state = run.account_state.with_password_change(changed_at)
            log.critical(
                "password_change.detected",
                account=run.account.name,
                keys_die_at=(
                    master_info.expires_at.isoformat() if master_info.expires_at else None
                ),
                action="rotating the keys the policy's password_change_scope names now; "
                "replace the master key by hand",
            )
        return changed_at is not None


def _unreadable(
    account: ManagedAccount,
    keys: Sequence[ManagedKey],
    error: str,
    failure: FailureClass | None = None,
) -> tuple[AccountReport, list[KeyReport]]:
    """The account could not be read: nothing is known of it or its keys this run."""
    return AccountReport(name=account.name, error=error), [
        unknown_report(k, error, failure) for k in keys
    ]


def _signalled_by_keys(run: AccountRun) -> bool:
    """Some managed key's expiry moved earlier, later than any change known: a change the master
    key did not show (Bybit may expire only unbound keys, and the master may be IP-bound)."""
    known = run.account_state.password_changed_at
    if run.key_signal is None or (known is not None and run.key_signal <= known):
        return False
    run.account_state = run.account_state.with_password_change(run.key_signal)
    log.critical(
        "password_change.detected",
        account=run.account.name,
        source="managed key expiry moved earlier",
        action="rotating the affected keys now; check the master key",
    )
    return True
